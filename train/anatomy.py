"""Where a sample's optic disc is and how large, from the best ground truth it carries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fundusrt.runtime.constants import FOVEA_DISTANCE_DD
from fundusrt.runtime.masks import decode_refuge, vertical_diameter

from .datasets import Sample


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
