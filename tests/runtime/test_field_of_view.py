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


def _outside(image, center, radius):
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    return np.hypot(xx - center[0], yy - center[1]) > radius


def _grey_surround(image, t):
    image[_outside(image, t.fov_center, t.fov_radius)] = (128, 128, 128)


def _white_surround(image, t):
    image[_outside(image, t.fov_center, t.fov_radius)] = (235, 235, 235)


def _notch(image, t):
    import cv2

    cx, cy, r = *t.fov_center, t.fov_radius
    tip = (int(cx + 0.9 * r), int(cy))
    base = [(int(cx + 1.05 * r), int(cy - 0.08 * r)), (int(cx + 1.05 * r), int(cy + 0.08 * r))]
    cv2.fillPoly(image, [np.array([tip, *base])], (0, 0, 0))


def _text_and_scale_bar(image, t):
    import cv2

    h, w = image.shape[:2]
    cx, cy, r = *t.fov_center, t.fov_radius
    # a caption running into the circle's lower left, and a scale bar in the upper right corner
    cv2.putText(image, "OS 45deg 2026-11-28", (int(cx - 1.1 * r), int(cy + 0.85 * r)),
                cv2.FONT_HERSHEY_SIMPLEX, r / 250, (255, 255, 255), max(2, int(r / 150)))  # fmt: skip
    cv2.rectangle(image, (w - int(0.25 * r), int(0.05 * r)), (w - int(0.05 * r), int(0.08 * r)), (255, 255, 255), -1)


def _flat_top_and_bottom(image, t):
    _, cy, r = *t.fov_center, t.fov_radius
    image[: max(int(cy - 0.88 * r), 0)] = 0
    image[int(cy + 0.88 * r) :] = 0


@pytest.mark.parametrize("spoil", [_grey_surround, _white_surround, _notch, _text_and_scale_bar, _flat_top_and_bottom])
@pytest.mark.parametrize("index", range(3))
def test_fov_on_real_borders(spoil, index):
    phantom = render_phantom(4, index, width=1000)
    t = phantom.truth
    image = phantom.image.copy()
    spoil(image, t)
    fov = detect_field_of_view(image)
    assert fov.found and fov.circular
    assert np.hypot(*(np.subtract(fov.center, t.fov_center))) < 0.02 * t.fov_radius
    assert fov.radius == pytest.approx(t.fov_radius, rel=0.02)


def test_views_are_black_outside_the_circle():
    phantom = render_phantom(4, 0, width=800)
    t = phantom.truth
    image = phantom.image.copy()
    _grey_surround(image, t)
    fov = detect_field_of_view(image)
    view = fov.cut(image, fov.view_transform(256), 256)
    yy, xx = np.mgrid[:256, :256]
    far_out = np.hypot(xx - 127.5, yy - 127.5) > 132
    assert view[far_out].max() == 0 and view[128, 128].max() > 0


@pytest.mark.parametrize("index", range(3))
def test_the_circle_does_not_depend_on_resolution(index):
    # The same photograph at 560 px and 8 x that: the same circle within a pixel of the smaller scale.
    import cv2

    image = render_phantom(6, index, width=560).image
    small = detect_field_of_view(image)
    h, w = image.shape[:2]
    big = detect_field_of_view(cv2.resize(image, (8 * w, 8 * h), interpolation=cv2.INTER_CUBIC))
    centre = (np.asarray(big.center) + 0.5) / 8 - 0.5  # pixel centres to pixel centres
    assert np.hypot(*(centre - small.center)) < 1.0 and abs(big.radius / 8 - small.radius) < 1.0
