import cv2
import numpy as np
import pytest

from fundusrt.runtime.geometry import Affine, disc_crop_transform, square_transform, warp, warp_to_original


def test_square_transform_maps_the_square_onto_the_output():
    a = square_transform((100.0, 50.0), 40.0, 8)
    # The square's continuous edges [80, 120] map to the output's [-0.5, 7.5]; its centre to 3.5.
    assert np.allclose(a([[80, 30], [120, 70], [100, 50]]), [[-0.5, -0.5], [7.5, 7.5], [3.5, 3.5]])
    assert a.scale == pytest.approx(0.2)


def test_affine_inverse_and_composition():
    a = Affine([[2.0, 0.1, 3.0], [-0.2, 1.5, -7.0]])
    b = square_transform((10, 20), 30, 64)
    points = np.random.default_rng(0).uniform(-100, 100, (50, 2))
    assert np.allclose(a.inverse()(a(points)), points)
    assert np.allclose(a.then(b)(points), b(a(points)))


def _dot_image(h, w, x, y, radius=3):
    image = np.zeros((h, w, 3), np.uint8)
    cv2.circle(image, (x, y), radius, (255, 255, 255), -1)
    return image


def crop_square(image, center, side, size):
    affine = square_transform(center, side, size)
    return warp(image, affine, size), affine


def _centroid(image):
    m = cv2.moments(image[..., 0].astype(np.float32))
    return np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])


@pytest.mark.parametrize("side", [300.0, 700.0, 1900.0])  # enlarging, mild and >= 2x shrinking
def test_crop_puts_a_point_where_the_affine_says(side):
    image = _dot_image(1200, 1600, 900, 500, radius=12)
    crop, affine = crop_square(image, (850.3, 540.7), side, 256)
    assert crop.shape == (256, 256, 3)
    assert np.linalg.norm(_centroid(crop) - affine([900, 500])) < 1.0


def test_crop_beyond_the_frame_is_black_padding():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop, affine = crop_square(image, (0.0, 49.5), 100.0, 100)  # left half of the square is outside
    assert crop[:, :45].max() == 0 and crop[:, 55:].min() == 200


def _disk_mask(h, w, cx, cy, r):
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (cx, cy), r, 1, -1)
    return mask


@pytest.mark.parametrize("center, side", [((800.0, 600.0), 1600.0), ((1210.0, 640.0), 420.0)])
def test_masks_round_trip_within_one_model_pixel(center, side):
    truth = _disk_mask(1200, 1600, 1200, 650, 150)
    small, affine = crop_square(truth.astype(np.float32), center, side, 512)
    back = warp_to_original(small, affine, truth.shape) > 0.5
    wrong = back != truth.astype(bool)
    # Every disagreeing pixel lies within one model pixel (in original pixels) of the true edge.
    edge_distance = np.minimum(
        cv2.distanceTransform(truth, cv2.DIST_L2, 5), cv2.distanceTransform(1 - truth, cv2.DIST_L2, 5)
    )
    tolerance = max(1.0, 1.0 / affine.scale) + 1.0
    assert wrong.sum() < 0.05 * truth.sum()
    assert edge_distance[wrong].max(initial=0) <= tolerance


def test_points_round_trip_through_a_disc_crop():
    image = _dot_image(1000, 1400, 1000, 420, radius=6)
    affine = disc_crop_transform((990.0, 430.0), 180.0, 512, factor=2.0)
    crop = warp(image, affine, 512)
    found = affine.inverse()(_centroid(crop))
    assert np.linalg.norm(found - [1000, 420]) < 1.0


def test_label_maps_go_back_with_nearest_neighbour():
    labels = np.zeros((64, 64), np.uint8)
    labels[16:48, 16:48] = 128
    labels[24:40, 24:40] = 0
    affine = square_transform((31.5, 31.5), 64, 64)  # identity
    back = warp_to_original(labels, affine, (64, 64), interpolation=cv2.INTER_NEAREST)
    assert set(np.unique(back)) <= {0, 128} and (back == labels).all()
