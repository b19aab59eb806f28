import numpy as np
import pytest

from fundusrt.runtime.field_of_view import detect_field_of_view
from fundusrt.train.phantoms import render_phantom


@pytest.mark.parametrize("index", range(6))
def test_fov_circle_of_phantoms(index):
    phantom = render_phantom(3, index, width=900)
    t = phantom.truth
    fov = detect_field_of_view(phantom.image)
    assert fov.found
    assert np.hypot(*(np.subtract(fov.center, t.fov_center))) < 0.02 * t.fov_radius
    assert fov.radius == pytest.approx(t.fov_radius, rel=0.02)


def test_clipped_circle_is_still_found():
    # A 4:3 frame whose circle is cut at top and bottom: the fit uses only the free arcs.
    import cv2

    image = np.zeros((600, 800, 3), np.uint8)
    cv2.circle(image, (400, 300), 360, (180, 70, 20), -1)
    fov = detect_field_of_view(image)
    assert fov.found and fov.radius == pytest.approx(360, rel=0.02)
    assert np.allclose(fov.center, (400, 300), atol=4)


def test_black_image_falls_back_to_the_whole_frame():
    fov = detect_field_of_view(np.zeros((300, 400, 3), np.uint8))
    assert not fov.found and fov.radius == 200 and fov.center == (199.5, 149.5)


def test_retina_filling_the_frame_uses_the_whole_frame():
    fov = detect_field_of_view(np.full((300, 400, 3), 120, np.uint8))
    assert fov.found and fov.radius == 200
