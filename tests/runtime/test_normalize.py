import numpy as np
import pytest

from fundusrt.runtime.normalize import Normalization


def test_mean_std_per_channel_and_layout():
    norm = Normalization(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    images = np.zeros((2, 4, 5, 3), np.uint8)
    images[..., 0], images[..., 1], images[..., 2] = 255, 0, 51
    x = norm(images)
    assert x.shape == (2, 3, 4, 5) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.allclose(x[:, 0], 1.0) and np.allclose(x[:, 1], -1.0) and np.allclose(x[:, 2], 0.2)
    assert norm(images[0]).shape == (3, 4, 5)


def test_per_image_z_score():
    rng = np.random.default_rng(0)
    x = Normalization(per_image=True)(rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8))
    assert np.allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-5) and np.allclose(x.std(axis=(1, 2, 3)), 1, atol=1e-4)


def test_field_colour_normalisation_undoes_a_camera_s_white_balance_and_exposure():
    rng = np.random.default_rng(1)
    field = rng.integers(20, 120, (2, 16, 16, 3)).astype(np.uint8)
    field[:, :3] = 0  # black beyond the field of view
    other_camera = np.clip(field * np.array([1.3, 0.9, 0.6]) + np.array([10, 0, 5]) * (field > 0), 0, 255)
    norm = Normalization(per_image=True, per_channel=True)
    x, y = norm(field), norm(other_camera.astype(np.uint8))
    assert np.abs(x - y).max() < 0.05  # the same photograph, whichever camera's colours (8-bit rounding)
    assert (x[:, :, :3] == 0).all()  # outside stays black
    inside = x[:, :, 3:]
    assert np.allclose(inside.mean(axis=(2, 3)), 0, atol=1e-5) and np.allclose(inside.std(axis=(2, 3)), 1, atol=1e-4)


def test_round_trips_through_a_dict():
    for norm in (Normalization(mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6)), Normalization(per_image=True, per_channel=True)):
        assert Normalization.from_dict(norm.to_dict()) == norm


def test_rejects_wrong_layout():
    with pytest.raises(ValueError, match="expected"):
        Normalization()(np.zeros((3, 8, 8), np.uint8))
