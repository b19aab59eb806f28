"""From model outputs to answers in original pixels: the locator's landmarks, the segmenter's
ellipses and their mask.

Each post-processing is a frozen dataclass of its constants that is called on a model's output.
The bundle's manifest carries one of each (the runtime calls those), and ``default()`` gives the
values training validates with and export writes. Training validation, the parity check, the
runtime and ``fundusrt evaluate`` all read the models through these two calls, so the checkpoint
kept in training is chosen by what the deployed system computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import FOVEA_DISTANCE_DD, FOVEA_SEPARATION, LOG_SIGMA, MASK_THRESHOLD, PEAK_MIN_DISTANCE, PEAK_THRESHOLD
from .ellipse import Ellipse, fit_largest_region
from .geometry import Affine
from .masks import BACKGROUND, encode_refuge
from .peaks import disc_and_fovea, log_peaks


@dataclass(frozen=True)
class LandmarkPostprocess:
    """The locator's map -> disc centre and fovea: Laplacian-of-Gaussian peaks (sigma and minimum
    distance as fractions of the map's side, threshold of the strongest response), the range of
    disc-fovea distances a second peak may be the fovea at (fractions of the map's side), and the
    disc-fovea distance in disc diameters (the first guess of the disc's size)."""

    log_sigma: float
    peak_min_distance: float
    peak_threshold: float
    fovea_separation: tuple[float, float]
    fovea_distance_dd: float

    @classmethod
    def default(cls) -> LandmarkPostprocess:
        return cls(LOG_SIGMA, PEAK_MIN_DISTANCE, PEAK_THRESHOLD, FOVEA_SEPARATION, FOVEA_DISTANCE_DD)

    def __call__(
        self, distance_map: np.ndarray, view: np.ndarray, affine: Affine
    ) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(disc centre, fovea or None) in original pixels from a predicted B^N map and the RGB view it
        was predicted from (same grid; ``affine`` maps original pixels onto it); None when no peak
        stands out. The fovea is None where no second peak could be one (``peaks.disc_and_fovea``)."""
        side = distance_map.shape[-1]
        sigma = self.log_sigma * side
        peaks = log_peaks(distance_map, sigma=sigma, min_distance=self.peak_min_distance * side,
                          threshold=self.peak_threshold)  # fmt: skip
        low, high = self.fovea_separation
        found = disc_and_fovea(peaks, view, radius=sigma, separation=(low * side, high * side))
        if found is None:
            return None
        disc, fovea = found
        inverse = affine.inverse()
        return inverse([disc.x, disc.y]), None if fovea is None else inverse([fovea.x, fovea.y])


@dataclass(frozen=True)
class DiscCup:
    """The segmenter's answer in original pixels: the disc and cup ellipses (None where not segmented)."""

    disc: Ellipse | None
    cup: Ellipse | None

    def refuge_mask(self, shape) -> np.ndarray:
        """The ellipses as a REFUGE-coded (H, W) mask: what is scored and what the runtime writes."""
        h, w = shape[:2]
        if self.disc is None:
            return np.full((h, w), BACKGROUND, np.uint8)
        disc = self.disc.mask((h, w))
        cup = self.cup.mask((h, w)) if self.cup is not None else np.zeros_like(disc)
        return encode_refuge(disc, cup)


@dataclass(frozen=True)
class SegmentationPostprocess:
    """The segmenter's probabilities -> disc and cup ellipses: ``threshold`` is the probability above
    which a pixel belongs to the region an ellipse is fitted to."""

    threshold: float

    @classmethod
    def default(cls) -> SegmentationPostprocess:
        return cls(MASK_THRESHOLD)

    def __call__(self, probabilities: np.ndarray, affine: Affine) -> DiscCup:
        """(2, S, S) disc/cup probabilities on a crop (``affine``: original pixels -> crop) -> ellipses in
        original pixels. Each plane is thresholded, its largest component kept (the cup's within the
        disc's) and an ellipse fitted to its outline on the crop's grid, then mapped back through the
        crop's map: smooth outlines, as the method prescribes, at the cost of a fit, not a full-size warp."""
        disc_region = np.asarray(probabilities[0]) > self.threshold
        disc = fit_largest_region(disc_region)
        if disc is None:
            return DiscCup(None, None)
        cup = fit_largest_region((np.asarray(probabilities[1]) > self.threshold) & disc_region)
        to_original = affine.inverse()
        return DiscCup(disc.mapped(to_original), cup.mapped(to_original) if cup is not None else None)
