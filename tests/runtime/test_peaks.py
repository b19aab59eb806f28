import numpy as np
import pytest

from fundusrt.runtime.geometry import about_center, square_transform
from fundusrt.runtime.peaks import Peak, disc_and_fovea, log_peaks
from fundusrt.runtime.postprocess import landmarks_from_map, probabilities_to_mask
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
    assert disc_and_fovea(log_peaks(one, sigma=3, min_distance=6), np.zeros((64, 64, 3)), radius=3) is None
    assert log_peaks(np.full((8, 8), np.nan), sigma=1, min_distance=2) == []


def test_the_disc_is_the_brighter_peak_in_green():
    image = np.zeros((64, 64, 3), np.uint8)
    image[5:15, 45:55, 1] = 200  # bright around (50, 10)
    a, b = Peak(10, 40, 1.0), Peak(50, 10, 0.9)
    disc, fovea = disc_and_fovea([a, b], image, radius=4)
    assert disc is b and fovea is a


def test_landmarks_come_back_in_original_pixels():
    # A 2000 x 1500 photograph, its FOV square at 256 px, flipped and rotated by augmentation.
    affine = square_transform((1000, 750), 1500, 256).then(about_center(256, angle=12, flip=True))
    disc, fovea = np.array([1400.0, 700.0]), np.array([820.0, 780.0])
    d, f = affine([disc, fovea])
    distance_map = bi_distance_map((256, 256), d, f)
    view = np.zeros((256, 256, 3), np.uint8)
    view[int(d[1]) - 5 : int(d[1]) + 6, int(d[0]) - 5 : int(d[0]) + 6, 1] = 255
    found = landmarks_from_map(distance_map, view, affine)
    assert found is not None
    scale = 1500 / 256
    assert np.linalg.norm(found[0] - disc) < scale and np.linalg.norm(found[1] - fovea) < scale


def test_probabilities_go_back_as_a_refuge_mask():
    affine = square_transform((300, 200), 200, 64)
    probabilities = np.zeros((2, 64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    probabilities[0] = np.hypot(xx - 31.5, yy - 31.5) < 16
    probabilities[1] = np.hypot(xx - 31.5, yy - 31.5) < 8
    mask = probabilities_to_mask(probabilities, affine, (400, 600))
    assert mask.shape == (400, 600) and set(np.unique(mask)) == {0, 128, 255}
    assert mask[200, 300] == 0 and mask[200, 300 + 40] == 128 and mask[200, 300 + 60] == 255


def test_about_center_flips_and_rotates_about_the_middle():
    flip = about_center(10, flip=True)
    assert np.allclose(flip([[0, 3], [9, 3], [4.5, 4.5]]), [[9, 3], [0, 3], [4.5, 4.5]])
    turn = about_center(11, angle=90)
    assert np.allclose(turn([[10, 5]]), [[5, 0]])  # counter-clockwise as seen: right goes up
