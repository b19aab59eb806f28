"""Finding the optic disc and the fovea in a predicted bi-distance map.

The map has a bump on each landmark. A scale-normalised Laplacian of Gaussian (OpenCV)
turns bumps into strong positive responses; non-maximum suppression (maxima of a square
neighbourhood) keeps the most prominent maxima at least ``min_distance`` apart, refined to
sub-pixel by a parabola through the neighbours.

The map does not say which bump is which. The photograph does: the optic disc is brighter than
the retina around it, the fovea darker. Brightness is measured against each peak's own
surround (a ring around it, black outside the field left out), so glare in a corner or a bright
illumination gradient, which outshine the disc in absolute terms, do not decide; and at three
scales, the largest answer counting, since a disc seen large (a narrow field) has a dark cup and
vessels at its centre. A second peak is taken as the fovea only where it could be one: darker than
its surround, marked about as firmly as the disc, and at a plausible distance from it. Otherwise (a
disc-centred photograph whose fovea lies near or beyond the edge) there is a disc and no fovea.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Peak:
    x: float
    y: float
    score: float  # LoG response relative to the map's strongest


def log_peaks(
    heatmap: np.ndarray, *, sigma: float, count: int = 2, min_distance: float, threshold: float = 0.2
) -> list[Peak]:
    """Up to ``count`` maxima of the LoG response, strongest first; weaker than ``threshold`` x the
    strongest are dropped. Fewer than ``count`` is a valid answer: the caller flags it."""
    m = np.asarray(heatmap, np.float32)
    if m.ndim != 2 or m.size == 0 or not np.isfinite(m).all():
        return []
    blurred = cv2.GaussianBlur(m, (0, 0), sigma)
    response = -cv2.Laplacian(blurred, cv2.CV_32F, ksize=3) * (sigma * sigma)
    peak = float(response.max())
    if peak <= 0:
        return []
    radius = max(1, int(min_distance))
    # Maxima of a square neighbourhood (scikit-image's peak_local_max convention): OpenCV dilates
    # with a rectangle in constant time per pixel, where a disc kernel took 100 ms at 512².
    # The loop below still spaces the chosen peaks by Euclidean distance.
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    local_max = (response >= cv2.dilate(response, kernel)) & (response >= threshold * peak)
    ys, xs = np.nonzero(local_max)
    order = np.argsort(-response[ys, xs], kind="stable")
    chosen: list[Peak] = []
    for i in order:
        x, y = _refine(response, int(xs[i]), int(ys[i]))
        if all((x - p.x) ** 2 + (y - p.y) ** 2 >= min_distance**2 for p in chosen):
            chosen.append(Peak(x, y, float(response[ys[i], xs[i]]) / peak))
            if len(chosen) == count:
                break
    return chosen


def _refine(r: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Sub-pixel position: the vertex of a parabola through the peak and its two neighbours, per axis."""

    def offset(left, centre, right):
        denominator = left - 2 * centre + right
        return 0.0 if denominator >= 0 else float(np.clip(0.5 * (left - right) / denominator, -0.5, 0.5))

    h, w = r.shape
    dx = offset(r[y, x - 1], r[y, x], r[y, x + 1]) if 0 < x < w - 1 else 0.0
    dy = offset(r[y - 1, x], r[y, x], r[y + 1, x]) if 0 < y < h - 1 else 0.0
    return x + dx, y + dy


RING = 2.5  # the surround of a peak: the ring out to this many times its radius
DISC_SCALES = (1, 2, 3)  # radii (in LoG sigmas) at which a peak's brightness is read: discs differ in size
# A second peak is the fovea only if the photograph agrees: darker than its surround, and marked about as
# firmly as the disc (both bumps are 1 in the training target). A fovea beyond the edge of a disc-centred
# photograph leaves at most a weak, truncated bump on retina that is not darker: measured with a locator
# trained on real photographs, such peaks scored 0.20-0.71 of the disc's and ranged -0.03..+0.04 in
# contrast, visible foveae 0.85-1.0 and -0.13..-0.04.
FOVEA_MAX_CONTRAST = 0.0
FOVEA_MIN_SCORE = 0.5


def disc_and_fovea(
    peaks: list[Peak], image: np.ndarray, *, radius: float, separation: tuple[float, float] = (0.0, np.inf)
) -> tuple[Peak, Peak | None] | None:
    """(disc, fovea or None) from up to two peaks on the same grid as the RGB ``image``; None without
    peaks. ``separation``: the distances (in grid pixels) at which a second peak may be the fovea."""
    if not peaks:
        return None
    green = np.asarray(image)[..., 1].astype(np.float32) / 255.0

    def brightness(p: Peak) -> float:  # at the scale that suits it: a large disc's centre is its dark cup
        return max(local_contrast(green, p, k * radius) for k in DISC_SCALES)

    ranked = sorted(peaks[:2], key=brightness, reverse=True)
    disc = ranked[0]
    if len(ranked) < 2:
        return disc, None
    fovea = ranked[1]
    distance = float(np.hypot(fovea.x - disc.x, fovea.y - disc.y))
    firm = fovea.score >= FOVEA_MIN_SCORE * disc.score
    dark = local_contrast(green, fovea, radius) <= FOVEA_MAX_CONTRAST
    return disc, fovea if firm and dark and separation[0] <= distance <= separation[1] else None


def local_contrast(channel: np.ndarray, p: Peak, radius: float) -> float:
    """Mean of ``channel`` within ``radius`` of the peak minus the mean of the ring around it (out to
    ``RING`` radii); pixels that are exactly 0 (outside the field of view) count in neither."""
    h, w = channel.shape
    outer = max(2, int(round(RING * radius)))
    x0, x1 = max(int(round(p.x)) - outer, 0), min(int(round(p.x)) + outer + 1, w)
    y0, y1 = max(int(round(p.y)) - outer, 0), min(int(round(p.y)) + outer + 1, h)
    patch = channel[y0:y1, x0:x1]
    if not patch.size:
        return 0.0
    yy, xx = np.mgrid[y0:y1, x0:x1]
    distance = np.hypot(xx - p.x, yy - p.y)
    valid = patch > 0
    inner = valid & (distance <= radius)
    ring = valid & (distance > radius) & (distance <= outer)
    if not inner.any() or not ring.any():
        return 0.0
    return float(patch[inner].mean() - patch[ring].mean())
