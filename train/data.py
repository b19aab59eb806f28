"""PyTorch datasets for the three tasks, built on the runtime's own geometry.

Every view is made the way the runtime makes it: decode -> field of view -> square crop of
the FOV (``full``) or a disc crop of ``crop_factor`` disc diameters (``crop``) -> resize ->
normalise. The crop's ``Affine`` travels with each example so predictions can be mapped
back to original pixels for the REFUGE metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from fundusrt.runtime.field_of_view import detect_field_of_view
from fundusrt.runtime.geometry import Affine, square_transform, warp
from fundusrt.runtime.masks import decode_refuge, vertical_diameter
from fundusrt.runtime.normalize import Normalization

from .augment import Augment
from .datasets import Sample
from .targets import bi_distance_map, disc_cup_planes

CROP_FACTOR = 2.0  # the seed: "about twice the diameter of the optic disc"
FOVEA_DISTANCE_DD = 2.5  # disc-fovea distance in disc diameters, for crops without a mask


@dataclass(frozen=True)
class Anatomy:
    """Disc centre and vertical diameter in original pixels, from the best source the sample has."""

    disc_center: tuple[float, float] | None
    disc_diameter: float | None


def anatomy(sample: Sample, mask: np.ndarray | None = None) -> Anatomy:
    if mask is None and sample.has_mask:
        mask = sample.load_mask()
    if mask is not None:
        disc, _ = decode_refuge(mask)
        if disc.any():
            ys, xs = np.nonzero(disc)
            centre = sample.disc_center or (float(xs.mean()), float(ys.mean()))
            return Anatomy(centre, vertical_diameter(disc))
    if sample.disc_center is not None and sample.fovea is not None:
        distance = float(np.hypot(*np.subtract(sample.disc_center, sample.fovea)))
        return Anatomy(sample.disc_center, distance / FOVEA_DISTANCE_DD)
    return Anatomy(sample.disc_center, None)


def full_view_transform(image: np.ndarray, size: int) -> Affine:
    """Original pixels -> the ``size``² square around the field of view."""
    return detect_field_of_view(image).view_transform(size)


def disc_view_transform(image: np.ndarray, anat: Anatomy, size: int, factor: float = CROP_FACTOR) -> Affine:
    """Original pixels -> the ``size``² disc crop; the whole frame where the disc is unknown
    (ACRIMA's images are already disc crops)."""
    if anat.disc_center is None or not anat.disc_diameter:
        h, w = image.shape[:2]
        return square_transform(((w - 1) / 2, (h - 1) / 2), max(h, w), size)
    return square_transform(anat.disc_center, factor * anat.disc_diameter, size)


class _TaskDataset(Dataset):
    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        size: int,
        normalization: Normalization,
        augment: Augment | None = None,
        seed: int = 0,
    ):
        self.samples = list(samples)
        self.size = size
        self.normalization = normalization
        self.augment = augment
        self.seed = seed
        self.epoch = 0  # set by the training loop so augmentation differs per epoch yet repeats per run
        self._anatomies: dict[int, Anatomy] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def anatomy_of(self, index: int) -> Anatomy:
        if index not in self._anatomies:  # a mask read per sample and process, not per epoch
            self._anatomies[index] = anatomy(self.samples[index])
        return self._anatomies[index]

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def _view(self, image: np.ndarray, affine: Affine, rng) -> tuple[np.ndarray, Affine]:
        if self.augment is not None:
            affine = affine.then(self.augment.geometry(rng, self.size))
        crop = warp(image, affine, self.size)
        if self.augment is not None:
            crop = self.augment.colour(rng, crop)
        return crop, affine

    def _disc_transform(self, image, index, rng) -> Affine:
        anat = self.anatomy_of(index)
        if self.augment is not None and anat.disc_center is not None and anat.disc_diameter:
            centre, diameter = self.augment.disc_crop(rng, anat.disc_center, anat.disc_diameter)
            anat = Anatomy(centre, diameter)
        return disc_view_transform(image, anat, self.size)

    def _tensor(self, crop: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.normalization(crop))


class ClassificationDataset(_TaskDataset):
    """``{"image", "label", "index"}``; ``view`` is ``"full"`` or ``"crop"``. Unlabelled samples are dropped."""

    def __init__(self, samples, *, view: str, **kwargs):
        super().__init__([s for s in samples if s.label is not None], **kwargs)
        if view not in ("full", "crop"):
            raise ValueError(f"view must be 'full' or 'crop', got {view!r}")
        self.view = view

    def __getitem__(self, index: int) -> dict:
        sample, rng = self.samples[index], self._rng(index)
        image = sample.load_image()
        base = full_view_transform(image, self.size) if self.view == "full" else self._disc_transform(image, index, rng)
        crop, _ = self._view(image, base, rng)
        return {"image": self._tensor(crop), "label": torch.tensor(sample.label), "index": index}


class SegmentationDataset(_TaskDataset):
    """``{"image", "target" (2, S, S) disc/cup, "affine", "index"}``; samples without masks are dropped."""

    def __init__(self, samples, **kwargs):
        super().__init__([s for s in samples if s.has_mask], **kwargs)

    def __getitem__(self, index: int) -> dict:
        sample, rng = self.samples[index], self._rng(index)
        image = sample.load_image()
        crop, affine = self._view(image, self._disc_transform(image, index, rng), rng)
        planes = disc_cup_planes(sample.load_mask())  # (2, H, W): warp both planes in one go
        target = warp(np.ascontiguousarray(planes.transpose(1, 2, 0)), affine, self.size) > 0.5
        return {
            "image": self._tensor(crop),
            "target": torch.from_numpy(target.transpose(2, 0, 1).astype(np.float32)),
            "affine": torch.from_numpy(affine.matrix),
            "index": index,
        }


class LocatorDataset(_TaskDataset):
    """``{"image", "target" (1, S, S) B^N, "affine", "index"}``; needs fovea and disc centre."""

    def __init__(self, samples, *, gamma: float, **kwargs):
        super().__init__([s for s in samples if s.fovea is not None and (s.disc_center or s.has_mask)], **kwargs)
        self.gamma = gamma

    def __getitem__(self, index: int) -> dict:
        sample, rng = self.samples[index], self._rng(index)
        image = sample.load_image()
        crop, affine = self._view(image, full_view_transform(image, self.size), rng)
        disc, fovea = affine([self.anatomy_of(index).disc_center, sample.fovea])
        target = bi_distance_map((self.size, self.size), disc, fovea, gamma=self.gamma)
        return {
            "image": self._tensor(crop),
            "target": torch.from_numpy(target[None]),
            "affine": torch.from_numpy(affine.matrix),
            "index": index,
        }
