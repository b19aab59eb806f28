import cv2
import numpy as np
import pytest

from fundusrt.runtime.normalize import Normalization
from fundusrt.runtime.peaks import log_peaks
from fundusrt.train.augment import Augment
from fundusrt.train.data import (
    Anatomy,
    ClassificationDataset,
    LocatorDataset,
    SegmentationDataset,
    anatomy,
)
from fundusrt.train.datasets import Sample, load_specs
from fundusrt.train.synth import write_phantom_dataset


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("ph")
    write_phantom_dataset(out, 6, seed=21, width=720)
    return load_specs(f"phantom:{out}")


RAW = Normalization(mean=(0, 0, 0), std=(1 / 255, 1 / 255, 1 / 255))  # keeps pixel values


@pytest.mark.parametrize("augment", [None, Augment(rotation=25, flip=1.0)])
def test_segmentation_targets_sit_on_the_disc(phantoms, augment):
    ds = SegmentationDataset(phantoms, size=192, normalization=RAW, augment=augment, seed=1)
    for i in range(len(ds)):
        item = ds[i]
        image, target = item["image"].numpy(), item["target"].numpy()
        assert target.shape == (2, 192, 192) and set(np.unique(target)) <= {0.0, 1.0}
        disc, cup = target[0] > 0, target[1] > 0
        assert (cup <= disc).all() and 0.1 < disc.mean() < 0.35  # twice the diameter: disc ~ pi/16 of the crop
        green = image[1]
        assert green[disc].mean() > green[~disc].mean() + 20  # the bright disc is where the target says


@pytest.mark.parametrize("augment", [None, Augment(rotation=25, flip=1.0)])
def test_locator_target_peaks_at_the_landmarks(phantoms, augment):
    ds = LocatorDataset(phantoms, size=128, normalization=RAW, gamma=7.0, augment=augment)
    for i in range(len(ds)):
        item = ds[i]
        peaks = log_peaks(item["target"][0].numpy(), sigma=5, min_distance=12)
        affine = item["affine"].numpy()
        sample = ds.samples[i]
        expected = [affine[:, :2] @ np.array(p) + affine[:, 2] for p in (sample.disc_center, sample.fovea)]
        for e in expected:
            assert min(np.hypot(p.x - e[0], p.y - e[1]) for p in peaks) < 1.0
        green = item["image"][1].numpy()
        dx, dy = np.round(expected[0]).astype(int)
        fx, fy = np.round(expected[1]).astype(int)
        assert green[dy - 2 : dy + 3, dx - 2 : dx + 3].mean() > green[fy - 2 : fy + 3, fx - 2 : fx + 3].mean()


def test_classification_views(phantoms):
    for view in ("full", "crop"):
        ds = ClassificationDataset(phantoms, view=view, size=64, normalization=Normalization())
        item = ds[0]
        assert item["image"].shape == (3, 64, 64) and int(item["label"]) == phantoms[0].label


def test_disc_crops_teach_only_the_crop_view(phantoms):
    from dataclasses import replace

    crops = [replace(s, dataset="acrima") for s in phantoms[:2]]  # as ACRIMA's images: already disc crops
    for view, expected in (("full", len(phantoms) - 2), ("crop", len(phantoms))):
        ds = ClassificationDataset([*crops, *phantoms[2:]], view=view, size=64, normalization=Normalization())
        assert len(ds) == expected


def test_augmentation_repeats_per_epoch_and_changes_between_epochs(phantoms):
    ds = SegmentationDataset(phantoms, size=192, normalization=RAW, augment=Augment(), seed=3)
    a, b = ds[0]["image"], ds[0]["image"]
    ds.epoch = 1
    c = ds[0]["image"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_anatomy_sources(phantoms, tmp_path):
    from_mask = anatomy(phantoms[0])
    assert from_mask.disc_diameter > 20 and from_mask.disc_center == phantoms[0].disc_center
    bare = Sample(image=tmp_path / "x.jpg", dataset="x", split="all", disc_center=(100.0, 50.0), fovea=(100.0, 300.0))
    assert anatomy(bare) == Anatomy((100.0, 50.0), 100.0)  # 250 px apart / 2.5 disc diameters
    assert anatomy(Sample(image=tmp_path / "x.jpg", dataset="x", split="all")) == Anatomy(None, None)


def test_other_cameras_fields_keep_the_disc_and_glare_stays_inside_the_field():
    from fundusrt.runtime.field_of_view import FieldOfView

    augment = Augment(field_change=1.0, field_narrowing=3.0, glare=1.0)
    fov, disc = FieldOfView((500.0, 400.0), 380.0, True, True), (760.0, 420.0)
    changed = 0
    for seed in range(200):
        field = augment.field(np.random.default_rng(seed), fov, keep=disc)
        assert np.hypot(disc[0] - field.center[0], disc[1] - field.center[1]) <= 0.9 * field.radius + 1e-9
        changed += field != fov
    assert changed > 100  # narrower fields are drawn, not just the original kept
    view = np.zeros((64, 64, 3), np.uint8)
    view[16:48, 16:48] = 90
    glared = augment.lens_glare(np.random.default_rng(3), view)
    assert (glared[view.max(axis=2) == 0] == 0).all() and glared.max() > 90


def test_other_cameras_and_lesions_change_the_field_only_inside_it():
    view = np.zeros((96, 96, 3), np.uint8)
    cv2.circle(view, (48, 48), 40, (170, 80, 40), -1)
    outside = view.max(axis=2) == 0
    every = Augment(vignetting=1.0, resolution=1.0, jpeg=1.0, sharpen=1.0, lesions=1.0)
    for seed in range(5):
        out = every.colour(np.random.default_rng(seed), view)
        assert out.shape == view.shape and out.dtype == np.uint8
        assert (out[outside] == 0).all() and np.abs(out.astype(int) - view).max() > 30
    spots = Augment(lesions=1.0).spots(np.random.default_rng(1), view, ~outside)
    assert (spots[outside] == 0).all() and (spots != view).any()  # spots inside the field, none beyond


def test_the_locator_target_drops_a_fovea_its_view_does_not_show(phantoms):
    augment = Augment(field_change=1.0, field_narrowing=3.0, rotation=0, flip=0)
    ds = LocatorDataset(phantoms, size=128, normalization=RAW, gamma=7.0, augment=augment)
    dropped = 0
    for epoch in range(4):
        ds.epoch = epoch
        for i in range(len(ds)):
            item = ds[i]
            target, view, affine = item["target"][0].numpy(), item["view"].numpy(), item["affine"].numpy()
            fx, fy = np.round(affine[:, :2] @ np.array(ds.samples[i].fovea) + affine[:, 2]).astype(int)
            inside = 0 <= fx < 128 and 0 <= fy < 128
            if inside and target[fy, fx] < 0.9:  # no bump at the fovea: the view must not show it
                dropped += 1
                assert view[fy, fx].max() == 0
    assert dropped > 0
