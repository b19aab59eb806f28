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
