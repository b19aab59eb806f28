import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fundusrt.runtime.masks import decode_refuge, refuge_vcdr
from fundusrt.train.phantoms import FOVEA_DISTANCE_DD, render_phantom


@pytest.fixture(scope="module")
def phantoms():
    return [render_phantom(11, i, width=640) for i in range(40)]


def test_same_seed_same_pixels():
    a, b = render_phantom(5, 2), render_phantom(5, 2)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.truth == b.truth
    assert not np.array_equal(render_phantom(5, 3, width=640).image, render_phantom(6, 3, width=640).image)


def test_frames_vary_in_size_aspect_and_eye():
    truths = [render_phantom(1, i).truth for i in range(12)]
    widths = [t.width for t in truths]
    assert min(widths) >= 800 and max(widths) <= 2200 and len(set(widths)) == 12
    aspects = {round(t.width / t.height, 2) for t in truths}
    assert aspects == {1.0, 1.33}
    assert {t.eye for t in truths} == {"OD", "OS"}


def test_ground_truth_agrees_with_the_mask(phantoms):
    for p in phantoms:
        t = p.truth
        assert p.mask.shape == (t.height, t.width) and set(np.unique(p.mask)) <= {0, 128, 255}
        assert refuge_vcdr(p.mask) == pytest.approx(t.vcdr)
        disc, cup = decode_refuge(p.mask)
        assert disc[round(t.disc_center[1]), round(t.disc_center[0])] and cup.sum() > 0
        ys, xs = np.nonzero(disc)
        assert np.hypot(xs.mean() - t.disc_center[0], ys.mean() - t.disc_center[1]) < 1.0


def test_anatomy(phantoms):
    for p in phantoms:
        t = p.truth
        dx = t.disc_center[0] - t.fovea[0]
        assert (dx > 0) == (t.eye == "OD")  # right eye: disc right of the fovea
        distance = np.hypot(dx, t.disc_center[1] - t.fovea[1])
        assert distance / t.disc_diameter == pytest.approx(FOVEA_DISTANCE_DD, rel=0.15)
        assert t.fovea[1] > t.disc_center[1]  # the fovea lies a little below the disc


def _ring_mean(channel, centre, r0, r1):
    h, w = channel.shape
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot(xx - centre[0], yy - centre[1])
    return channel[(d >= r0) & (d < r1)].mean()


def test_looks_like_a_fundus_photograph(phantoms):
    for p in phantoms:
        t, image = p.truth, p.image.astype(float)
        r = t.disc_diameter / 2
        inside = image[round(t.fov_center[1]) - 20 : round(t.fov_center[1]) + 20, round(t.fov_center[0]) - 20 :][
            :40, :40
        ]
        red, green, blue = inside.reshape(-1, 3).mean(axis=0)
        assert red > green > blue  # orange-red retina
        assert image[:3, :3].max() < 12 and image[-3:, -3:].max() < 12  # black outside the circle
        g = image[..., 1]
        assert _ring_mean(g, t.disc_center, 0, r * 0.8) > 1.5 * _ring_mean(g, t.disc_center, 2 * r, 3 * r)
        assert _ring_mean(g, t.fovea, 0, r * 0.2) < 0.9 * _ring_mean(g, t.fovea, 2 * r, 3 * r)


def test_vcdr_drives_the_label_with_overlap():
    truths = [render_phantom(2, i, width=400).truth for i in range(120)]
    labels = np.array([t.glaucoma for t in truths])
    vcdr = np.array([t.vcdr for t in truths])
    assert 0.25 < labels.mean() < 0.75
    auc = roc_auc_score(labels, vcdr)
    assert 0.85 < auc < 1.0  # learnable, yet the classes overlap
    assert vcdr[labels == 1].min() < vcdr[labels == 0].max()
