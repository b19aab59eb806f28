import numpy as np
import pytest

from fundusrt.runtime.geometry import about_center, square_transform
from fundusrt.runtime.peaks import Peak, disc_and_fovea, log_peaks
from fundusrt.runtime.postprocess import LandmarkPostprocess, SegmentationPostprocess
from fundusrt.train.targets import bi_distance_map


@pytest.mark.parametrize("size", [128, 512])
def test_log_finds_both_landmarks_of_a_bi_distance_map_to_a_subpixel(size):
    disc, fovea = (0.71 * size + 0.3, 0.43 * size), (0.26 * size, 0.55 * size + 0.4)
    peaks = log_peaks(bi_distance_map((size, size), disc, fovea), sigma=0.04 * size, min_distance=0.1 * size)
    assert len(peaks) == 2
    for target in (disc, fovea):
        assert min(np.hypot(p.x - target[0], p.y - target[1]) for p in peaks) < 0.75


def test_fewer_than_two_peaks_is_an_answer_not_a_crash():
    flat = np.zeros((64, 64), np.float32)
    assert log_peaks(flat, sigma=3, min_distance=6) == []
    one = bi_distance_map((64, 64), (20, 20), (20, 20))
    assert len(log_peaks(one, sigma=3, min_distance=6)) == 1
    # One peak is a disc without a fovea (a disc-centred photograph); none is no answer.
    (peak,) = log_peaks(one, sigma=3, min_distance=6)
    assert disc_and_fovea([peak], np.zeros((64, 64, 3)), radius=3) == (peak, None)
    assert disc_and_fovea([], np.zeros((64, 64, 3)), radius=3) is None
    assert log_peaks(np.full((8, 8), np.nan), sigma=1, min_distance=2) == []


def _retina(size=128, level=120):
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 1] = level
    return image


def test_the_disc_is_the_peak_brighter_than_its_surround():
    image = _retina()
    image[15:26, 95:106, 1] = 220  # a bright disc around (100, 20)
    image[75:86, 25:36, 1] = 60  # a dark fovea around (30, 80)
    a, b = Peak(30, 80, 1.0), Peak(100, 20, 0.9)
    disc, fovea = disc_and_fovea([a, b], image, radius=5)
    assert disc is b and fovea is a


def test_glare_brighter_than_the_disc_does_not_decide():
    # A corner washed out by glare is brighter than the disc in absolute terms, but flat: the disc
    # stands out from its own surround, the fovea is darker than its surround.
    image = _retina()
    image[:64, :64, 1] = 250  # glare over the fovea's quadrant
    image[40:51, 20:31, 1] = 200  # the fovea, darker than the glare around it, at (25, 45)
    image[95:106, 95:106, 1] = 210  # the disc at (100, 100), dimmer than the glare
    a, b = Peak(25, 45, 1.0), Peak(100, 100, 0.9)
    disc, fovea = disc_and_fovea([a, b], image, radius=5)
    assert disc is b and fovea is a


def test_a_second_peak_that_cannot_be_the_fovea_is_dropped():
    image = _retina()
    image[55:66, 55:66, 1] = 220  # the disc at (60, 60)
    image[55:66, 95:106, 1] = 180  # another bright spot at (100, 60): not a fovea
    disc, fovea = disc_and_fovea([Peak(60, 60, 1.0), Peak(100, 60, 0.5)], image, radius=5)
    assert (disc.x, disc.y) == (60, 60) and fovea is None
    image = _retina()
    image[55:66, 55:66, 1] = 220
    image[57:64, 67:74, 1] = 60  # dark, but right beside the disc
    disc, fovea = disc_and_fovea([Peak(60, 60, 1.0), Peak(70, 60, 0.5)], image, radius=5, separation=(20, 100))
    assert fovea is None


def test_landmarks_come_back_in_original_pixels():
    # A 2000 x 1500 photograph, its FOV square at 256 px, flipped and rotated by augmentation.
    affine = square_transform((1000, 750), 1500, 256).then(about_center(256, angle=12, flip=True))
    disc, fovea = np.array([1400.0, 700.0]), np.array([820.0, 780.0])
    d, f = affine([disc, fovea])
    distance_map = bi_distance_map((256, 256), d, f)
    view = np.zeros((256, 256, 3), np.uint8)
    view[int(d[1]) - 5 : int(d[1]) + 6, int(d[0]) - 5 : int(d[0]) + 6, 1] = 255
    found = LandmarkPostprocess.default()(distance_map, view, affine)
    assert found is not None
    scale = 1500 / 256
    assert np.linalg.norm(found[0] - disc) < scale and np.linalg.norm(found[1] - fovea) < scale


def test_probabilities_go_back_as_the_ellipses_refuge_mask():
    affine = square_transform((300, 200), 200, 64)  # 200 original pixels on 64: 3.125 a crop pixel
    probabilities = np.zeros((2, 64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    probabilities[0] = np.hypot(xx - 31.5, yy - 31.5) < 16
    probabilities[1] = np.hypot(xx - 31.5, yy - 31.5) < 8
    mask = SegmentationPostprocess.default()(probabilities, affine).refuge_mask((400, 600))
    assert mask.shape == (400, 600) and set(np.unique(mask)) == {0, 128, 255}
    assert mask[200, 300] == 0 and mask[200, 300 + 40] == 128 and mask[200, 300 + 60] == 255
    # the disc's radius, 16 crop pixels, is 50 original pixels: the mask is its ellipse, not its steps
    assert abs(np.sum(mask < 255) - np.pi * 50**2) < 0.02 * np.pi * 50**2
    assert SegmentationPostprocess(0.99)(probabilities * 0.9, affine).disc is None  # the threshold is the bundle's


def test_about_center_flips_and_rotates_about_the_middle():
    flip = about_center(10, flip=True)
    assert np.allclose(flip([[0, 3], [9, 3], [4.5, 4.5]]), [[9, 3], [0, 3], [4.5, 4.5]])
    turn = about_center(11, angle=90)
    assert np.allclose(turn([[10, 5]]), [[5, 0]])  # counter-clockwise as seen: right goes up
