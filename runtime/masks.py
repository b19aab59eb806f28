"""Optic disc / cup masks in REFUGE coding, and the vertical cup-to-disc ratio.

REFUGE codes one 8-bit mask per image: 0 = cup, 128 = disc rim, 255 = background, so the
disc is ``mask < 255`` and the cup ``mask == 0``. The vertical diameter and vCDR follow the
official REFUGE evaluation exactly (its definitions are restated here, not its code).
"""

from __future__ import annotations

import numpy as np

CUP, RIM, BACKGROUND = 0, 128, 255
VCDR_EPS = 1e-7  # the official evaluation's guard against an empty disc


def encode_refuge(disc: np.ndarray, cup: np.ndarray) -> np.ndarray:
    """Boolean disc and cup masks -> REFUGE-coded uint8. The cup is clipped to the disc."""
    disc = np.asarray(disc, bool)
    cup = np.asarray(cup, bool) & disc
    mask = np.full(disc.shape, BACKGROUND, np.uint8)
    mask[disc] = RIM
    mask[cup] = CUP
    return mask


def decode_refuge(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """REFUGE-coded mask -> (disc, cup) booleans; the disc includes the cup."""
    mask = np.asarray(mask)
    return mask < BACKGROUND, mask == CUP


def vertical_diameter(region: np.ndarray) -> float:
    """The largest number of region pixels in any one column (REFUGE's definition)."""
    region = np.asarray(region, bool)
    return float(region.sum(axis=0).max()) if region.size else 0.0


def vertical_cdr(disc: np.ndarray, cup: np.ndarray) -> float:
    """Vertical cup-to-disc ratio: cup diameter / (disc diameter + 1e-7)."""
    return vertical_diameter(cup) / (vertical_diameter(disc) + VCDR_EPS)


def refuge_vcdr(mask: np.ndarray) -> float:
    """vCDR of a REFUGE-coded mask."""
    disc, cup = decode_refuge(mask)
    return vertical_cdr(disc, cup)
