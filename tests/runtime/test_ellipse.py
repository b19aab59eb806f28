import math

import numpy as np
import pytest

from fundusrt.runtime.ellipse import Ellipse, fit_largest_region, largest_component
from fundusrt.runtime.geometry import square_transform
from fundusrt.runtime.postprocess import DiscCup, SegmentationPostprocess

READ = SegmentationPostprocess.default()


@pytest.mark.parametrize("axes,angle", [((80, 50), 30), ((40, 60), 0), ((120, 30), 95), ((24, 18), 10)])
def test_fit_recovers_an_ellipse_to_a_fraction_of_a_pixel(axes, angle):
    truth = Ellipse((100.3, 90.7), axes, angle)
    fitted = fit_largest_region(truth.mask((200, 220)))
    assert np.allclose(fitted.center, truth.center, atol=0.1)
    assert sorted(fitted.axes) == pytest.approx(sorted(axes), abs=0.4)
    assert fitted.vertical_diameter == pytest.approx(truth.vertical_diameter, abs=0.4)


def test_vertical_diameter_of_a_rotated_ellipse():
    assert Ellipse((0, 0), (80, 40), 0).vertical_diameter == pytest.approx(40)
    assert Ellipse((0, 0), (80, 40), 90).vertical_diameter == pytest.approx(80)
    # at 45 degrees the bounding box's height is 2·sqrt((a² + b²) / 2) for semi-axes a, b
    assert Ellipse((0, 0), (80, 40), 45).vertical_diameter == pytest.approx(2 * math.sqrt((40**2 + 20**2) / 2))


def test_largest_component_drops_specks():
    mask = Ellipse((50, 50), (40, 30), 0).mask((100, 100))
    mask[5:8, 5:8] = True
    kept = largest_component(mask)
    assert not kept[5:8, 5:8].any() and kept.sum() == mask.sum() - 9
    assert fit_largest_region(np.zeros((10, 10), bool)) is None


def test_ellipses_map_back_through_the_crop():
    # A disc of 300 px at (1000, 700) in the original, seen in a 192-px crop 2 diameters wide.
    crop = square_transform((1000, 700), 600, 192)
    disc_o, cup_o = Ellipse((1010, 690), (280, 300), 5), Ellipse((1012, 692), (140, 180), 0)
    planes = np.stack([e.mapped(crop).mask((192, 192)) for e in (disc_o, cup_o)]).astype(np.float32)
    disc, cup = (found := READ(planes, crop)).disc, found.cup
    assert np.allclose(disc.center, disc_o.center, atol=1.5) and np.allclose(cup.center, cup_o.center, atol=1.5)
    assert disc.vertical_diameter == pytest.approx(300, abs=4)  # one crop pixel is 3.1 original pixels
    assert cup.vertical_diameter / disc.vertical_diameter == pytest.approx(180 / 300, abs=0.02)


def test_no_cup_and_no_disc():
    crop = square_transform((100, 100), 200, 64)
    planes = np.zeros((2, 64, 64), np.float32)
    assert READ(planes, crop) == DiscCup(None, None)
    assert (READ(planes, crop).refuge_mask((50, 60)) == 255).all()
    planes[0, 20:40, 20:40] = 1
    found = READ(planes, crop)
    assert found.disc is not None and found.cup is None
    assert set(np.unique(found.refuge_mask((200, 200)))) == {128, 255}
