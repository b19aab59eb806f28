"""One record per image, whatever dataset it comes from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fundusrt.runtime.image_io import ImageReadError, check_image_file, read_image
from fundusrt.runtime.masks import encode_refuge

GLAUCOMA, NORMAL = 1, 0
# Sources whose images are already crops around the optic disc (ACRIMA): they teach the disc-crop
# members only, since a full-view member would learn that a disc filling the frame is a photograph.
DISC_CROP_SOURCES = frozenset({"acrima"})


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder that is not in its published layout; the message names the missing path."""


@dataclass(frozen=True)
class Sample:
    """An image with whatever ground truth its dataset publishes, in the image's own pixels.

    ``mask_coding`` says how to turn ``mask_files`` into a REFUGE-coded mask:
    ``"refuge"`` one file, 0 cup / 128 rim / 255 background; ``"labels"`` one file,
    0 background / 1 rim / 2 cup (ORIGA); ``"pair"`` a disc file and a cup file, inside where
    the pixel exceeds ``mask_threshold`` (Drishti-GS1 soft maps, RIM-ONE binary masks).
    """

    image: Path
    dataset: str
    split: str  # "train", "validation", "test", or "all" where the dataset has no official split
    label: int | None = None  # GLAUCOMA, NORMAL, or None (unknown, e.g. RIM-ONE suspects)
    mask_files: tuple[Path, ...] = ()
    mask_coding: str | None = None
    mask_threshold: int = 0
    fovea: tuple[float, float] | None = None
    disc_center: tuple[float, float] | None = None
    crop: tuple[int, int, int, int] | None = None  # (x, y, w, h) kept of image and masks, e.g. a stereo half

    @property
    def name(self) -> str:
        return self.image.name

    @property
    def has_mask(self) -> bool:
        return bool(self.mask_files)

    @property
    def disc_crop(self) -> bool:
        """Whether the image is a crop around the disc rather than a whole photograph."""
        return self.dataset in DISC_CROP_SOURCES

    def load_image(self) -> np.ndarray:
        """RGB uint8, cropped where the dataset needs it."""
        return self._crop(read_image(self.image))

    def load_mask(self) -> np.ndarray | None:
        """The disc/cup annotation as a REFUGE-coded uint8 mask at image size, or None."""
        if not self.mask_files:
            return None
        planes = [self._crop(_read_gray(p)) for p in self.mask_files]
        if self.mask_coding == "refuge":
            return planes[0]
        if self.mask_coding == "labels":
            m = planes[0]
            if m.max() > 2:  # some ORIGA redistributions already use REFUGE's coding
                return m
            return encode_refuge(m > 0, m == 2)
        if self.mask_coding == "pair":
            disc, cup = planes
            return encode_refuge(disc > self.mask_threshold, cup > self.mask_threshold)
        raise ValueError(f"{self.image}: unknown mask coding {self.mask_coding!r}")

    def _crop(self, array: np.ndarray) -> np.ndarray:
        if self.crop is None:
            return array
        x, y, w, h = self.crop
        return array[y : y + h, x : x + w]


def _read_gray(path: Path) -> np.ndarray:
    mask = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"{path}: not a readable mask image")
    return mask


def require(path: Path, what: str) -> Path:
    """``path`` if it exists, else a DatasetLayoutError naming it."""
    if not path.exists():
        raise DatasetLayoutError(f"{what}: missing {path}")
    return path


def vet_samples(samples: list[Sample]) -> tuple[list[Sample], list[str]]:
    """(usable samples, one line per unusable one): images that are missing, empty, truncated or too
    large, and annotation files that are missing, are set aside before training starts."""
    usable, problems = [], []
    for sample in samples:
        try:
            check_image_file(sample.image)
            for path in sample.mask_files:
                if not path.is_file():
                    raise ImageReadError(path, "annotation file missing")
        except ImageReadError as e:
            problems.append(str(e))
        else:
            usable.append(sample)
    return usable, problems
