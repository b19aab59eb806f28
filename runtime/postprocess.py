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
# Where a second peak may be the fovea: its distance from the disc as a fraction of the field of
# view's diameter (the map's side). The disc-fovea distance is about 4.5 mm; a 60-degree camera
# images about 17 mm of retina across (0.26), a 45-degree one 12 mm (0.37), a 20-degree one 6 mm (0.75).
FOVEA_SEPARATION = (0.18, 0.85)


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
    separation: tuple[float, float] = FOVEA_SEPARATION,
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(disc centre, fovea or None) in original pixels from a predicted B^N map and the RGB view it
    was predicted from (same grid); None when no peak stands out. The fovea is None where no second
    peak could be one (see ``peaks.disc_and_fovea``)."""
    side = distance_map.shape[-1]
    peaks = log_peaks(distance_map, sigma=sigma * side, min_distance=min_distance * side, threshold=threshold)
    found = disc_and_fovea(peaks, image, radius=sigma * side, separation=(separation[0] * side, separation[1] * side))
    if found is None:
        return None
    disc, fovea = found
    inverse = affine.inverse()
    return inverse([disc.x, disc.y]), None if fovea is None else inverse([fovea.x, fovea.y])


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
