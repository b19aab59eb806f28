import numpy as np
import pytest

from fundusrt.runtime.constants import GAMMA
from fundusrt.runtime.masks import refuge_vcdr
from fundusrt.train.targets import bi_distance_map, disc_cup_planes


def test_bi_distance_map_hand_case():
    # One row of five pixels, disc at x=0, fovea at x=4: B = [0, 1, 2, 1, 0], max B = 2.
    b = bi_distance_map((1, 5), disc_center=(0, 0), fovea=(4, 0))
    assert GAMMA == 7
    assert np.allclose(b[0], [1, 0.5**7, 0, 0.5**7, 1])
    assert np.allclose(bi_distance_map((1, 5), (0, 0), (4, 0), gamma=1)[0], [1, 0.5, 0, 0.5, 1])


def test_bi_distance_map_two_dimensions():
    b = bi_distance_map((30, 40), disc_center=(30.0, 10.0), fovea=(8.0, 20.0))
    assert b.shape == (30, 40) and b.dtype == np.float32
    assert b[10, 30] == pytest.approx(1) and b[20, 8] == pytest.approx(1)
    assert b.min() == pytest.approx(0) and 0 <= b.min() <= b.max() <= 1
    y, x = 3, 17
    d = min(np.hypot(x - 30, y - 10), np.hypot(x - 8, y - 20))
    yy, xx = np.mgrid[:30, :40]
    dmax = np.minimum(np.hypot(xx - 30, yy - 10), np.hypot(xx - 8, yy - 20)).max()
    assert b[y, x] == pytest.approx((1 - d / dmax) ** 7, rel=1e-5)


def test_disc_cup_planes_and_vcdr():
    mask = np.full((8, 8), 255, np.uint8)
    mask[1:7, 2:6] = 128
    mask[3:5, 3:5] = 0
    planes = disc_cup_planes(mask)
    assert planes.shape == (2, 8, 8) and planes.dtype == np.float32
    assert planes[0].sum() == 24 and planes[1].sum() == 4  # the disc includes the cup
    assert refuge_vcdr(mask) == pytest.approx(2 / 6)


def test_bi_distance_map_without_a_fovea_is_the_disc_alone():
    b = bi_distance_map((20, 30), disc_center=(5.0, 7.0), fovea=None)
    yy, xx = np.mgrid[:20, :30]
    d = np.hypot(xx - 5.0, yy - 7.0)
    assert np.allclose(b, (1 - d / d.max()) ** GAMMA, atol=1e-6)
    assert np.unravel_index(b.argmax(), b.shape) == (7, 5) and (b == 1).sum() == 1
