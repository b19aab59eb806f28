"""From model outputs to answers in original pixels: masks and landmarks.

Shared by training (validation metrics) and the screening pipeline, so both read the models
the same way.
"""

from __future__ import annotations

import numpy as np

from .ellipse import Ellipse, fit_largest_region
from .geometry import Affine, warp_to_original
from .masks import encode_refuge
from .peaks import disc_and_fovea, log_peaks

# Laplacian-of-Gaussian peak finding on the bi-distance map, as fractions of the map's side:
# sigma 0.04 (about 20 px at 512, the scale of a gamma-7 bump), peaks at least 0.1 apart.
LOG_SIGMA = 0.04
PEAK_MIN_DISTANCE = 0.1
PEAK_THRESHOLD = 0.2


def probabilities_to_mask(probabilities: np.ndarray, affine: Affine, shape, threshold: float = 0.5) -> np.ndarray:
    """(2, S, S) disc/cup probabilities on a crop -> REFUGE-coded mask on the original (H, W) grid."""
    planes = np.ascontiguousarray(np.asarray(probabilities, np.float32).transpose(1, 2, 0))
    back = warp_to_original(planes, affine, shape)
    return encode_refuge(back[..., 0] > threshold, back[..., 1] > threshold)


def landmarks_from_map(
    distance_map: np.ndarray,
    image: np.ndarray,
    affine: Affine,
    *,
    sigma: float = LOG_SIGMA,
    min_distance: float = PEAK_MIN_DISTANCE,
    threshold: float = PEAK_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(disc centre, fovea) in original pixels from a predicted B^N map and the RGB view it was
    predicted from (same grid); None when fewer than two peaks stand out."""
    side = distance_map.shape[-1]
    peaks = log_peaks(distance_map, sigma=sigma * side, min_distance=min_distance * side, threshold=threshold)
    pair = disc_and_fovea(peaks, image, radius=sigma * side)
    if pair is None:
        return None
    inverse = affine.inverse()
    disc, fovea = inverse([[pair[0].x, pair[0].y], [pair[1].x, pair[1].y]])
    return disc, fovea


def disc_cup_ellipses(
    probabilities: np.ndarray, affine: Affine, threshold: float = 0.5
) -> tuple[Ellipse | None, Ellipse | None]:
    """(2, S, S) disc/cup probabilities on a crop -> (disc, cup) ellipses in original pixels.

    Each plane is thresholded, its largest component kept (the cup's within the disc's), and an
    ellipse fitted to the outline on the crop's grid, then mapped back through the crop's map:
    smooth outlines, as the method prescribes, at the cost of a fit rather than a full-size warp.
    """
    disc_region = np.asarray(probabilities[0]) > threshold
    disc = fit_largest_region(disc_region)
    if disc is None:
        return None, None
    cup = fit_largest_region((np.asarray(probabilities[1]) > threshold) & disc_region)
    to_original = affine.inverse()
    return disc.mapped(to_original), cup.mapped(to_original) if cup is not None else None
