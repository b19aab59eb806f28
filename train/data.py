"""PyTorch datasets for the three tasks, built on the runtime's own geometry.

Every view is made the way the runtime makes it: decode -> field of view -> square crop of
the FOV (``full``) or a disc crop of ``crop_factor`` disc diameters (``crop``) -> resize, black
outside the FOV circle -> normalise. The crop's ``Affine`` travels with each example so
predictions can be mapped back to original pixels for the REFUGE metrics. Decoded images and
their FOV circles are kept in memory (up to a budget), since every epoch and every ensemble
member reads the same photographs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from fundusrt.runtime.constants import CROP_FACTOR
from fundusrt.runtime.field_of_view import FieldOfView, detect_field_of_view
from fundusrt.runtime.geometry import Affine, disc_crop_transform, square_transform, warp
from fundusrt.runtime.normalize import Normalization

from .anatomy import Anatomy, anatomy
from .augment import Augment
from .datasets import Sample
from .targets import bi_distance_map, disc_cup_planes


def disc_view_transform(image: np.ndarray, anat: Anatomy, size: int, factor: float = CROP_FACTOR) -> Affine:
    """Original pixels -> the ``size``² disc crop; the whole frame where the disc is unknown
    (ACRIMA's images are already disc crops)."""
    if anat.disc_center is None or not anat.disc_diameter:
        h, w = image.shape[:2]
        return square_transform(((w - 1) / 2, (h - 1) / 2), max(h, w), size)
    return disc_crop_transform(anat.disc_center, anat.disc_diameter, size, factor=factor)


class _Decoded:
    """Decoded images and their FOV circles, kept while they fit in ``budget`` bytes (shared by every
    dataset of a process: the five ensemble members and the validation set read the same files)."""

    def __init__(self, budget: int):
        self.budget, self.used, self.items = budget, 0, {}

    def image(self, sample: Sample) -> tuple[np.ndarray, FieldOfView]:
        def load():
            image = sample.load_image()
            return image, detect_field_of_view(image)

        return self._get(("image", sample.image, sample.crop), load, lambda item: item[0])

    def mask(self, sample: Sample) -> np.ndarray | None:
        return self._get(("mask", sample.image, sample.crop), sample.load_mask, lambda item: item)

    def _get(self, key, load, array_of):
        if key in self.items:
            return self.items[key]
        item = load()
        array = array_of(item)
        size = 0 if array is None else array.nbytes
        if self.used + size <= self.budget:
            if array is not None:
                array.flags.writeable = False  # shared: nobody may draw on it
            self.items[key] = item
            self.used += size
        return item


DECODED = _Decoded(int(float(os.environ.get("FUNDUSRT_CACHE_GIB", "4")) * 2**30))


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
            self._anatomies[index] = anatomy(self.samples[index], self._mask(index))
        return self._anatomies[index]

    def _mask(self, index: int) -> np.ndarray | None:
        return DECODED.mask(self.samples[index])

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def _decoded(self, index: int) -> tuple[np.ndarray, FieldOfView]:
        return DECODED.image(self.samples[index])

    def _full_view(self, index: int, rng) -> tuple[np.ndarray, Affine, FieldOfView]:
        """The full view, its map and its circle; in training sometimes another camera's narrower, shifted
        field (the disc kept inside it) and lens glare."""
        image, fov = self._decoded(index)
        if self.augment is not None:
            fov = self.augment.field(rng, fov, keep=self.anatomy_of(index).disc_center)
        view, affine = self._view(image, fov, fov.view_transform(self.size), rng)
        if self.augment is not None:
            view = self.augment.lens_glare(rng, view)
        return view, affine, fov

    def _view(self, image: np.ndarray, fov: FieldOfView, affine: Affine, rng) -> tuple[np.ndarray, Affine]:
        if self.augment is not None:
            affine = affine.then(self.augment.geometry(rng, self.size))
        crop = fov.cut(image, affine, self.size)
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
    """``{"image", "label", "index"}``; ``view`` is ``"full"`` or ``"crop"``. Unlabelled samples are dropped,
    and for the full view, images that are already disc crops (``Sample.disc_crop``)."""

    def __init__(self, samples, *, view: str, **kwargs):
        kept = [s for s in samples if s.label is not None and not (view == "full" and s.disc_crop)]
        super().__init__(kept, **kwargs)
        if view not in ("full", "crop"):
            raise ValueError(f"view must be 'full' or 'crop', got {view!r}")
        self.view = view

    def __getitem__(self, index: int) -> dict:
        sample, rng = self.samples[index], self._rng(index)
        if self.view == "full":
            crop, _, _ = self._full_view(index, rng)
        else:
            image, fov = self._decoded(index)
            crop, _ = self._view(image, fov, self._disc_transform(image, index, rng), rng)
        return {"image": self._tensor(crop), "label": torch.tensor(sample.label), "index": index}


class SegmentationDataset(_TaskDataset):
    """``{"image", "target" (2, S, S) disc/cup, "affine", "index"}``; samples without masks are dropped."""

    def __init__(self, samples, **kwargs):
        super().__init__([s for s in samples if s.has_mask], **kwargs)

    def __getitem__(self, index: int) -> dict:
        rng = self._rng(index)
        image, fov = self._decoded(index)
        crop, affine = self._view(image, fov, self._disc_transform(image, index, rng), rng)
        if self.augment is not None:  # sometimes the photograph's edge runs close by the disc
            anat = self.anatomy_of(index)
            crop = self.augment.frame_edge(rng, crop, affine(anat.disc_center), anat.disc_diameter * affine.scale)
        planes = disc_cup_planes(self._mask(index))  # (2, H, W): warp both planes in one go
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
        crop, affine, fov = self._full_view(index, rng)
        disc = affine(self.anatomy_of(index).disc_center)
        # the fovea's bump only where the view shows it (inside the circle and the frame)
        h, w = self._decoded(index)[0].shape[:2]
        fx, fy = sample.fovea
        shown = np.hypot(fx - fov.center[0], fy - fov.center[1]) <= fov.radius and 0 <= fx < w and 0 <= fy < h
        fovea = affine(sample.fovea) if shown else None
        target = bi_distance_map((self.size, self.size), disc, fovea, gamma=self.gamma)
        return {
            "image": self._tensor(crop),
            "view": torch.from_numpy(crop),  # RGB uint8: the disc/fovea choice reads the photograph
            "target": torch.from_numpy(target[None]),
            "affine": torch.from_numpy(affine.matrix),
            "index": index,
        }
