"""Finding the optic disc and the fovea in a predicted bi-distance map.

The map has a bump on each landmark. A scale-normalised Laplacian of Gaussian (OpenCV)
turns bumps into strong positive responses; non-maximum suppression (maxima of a square
neighbourhood) keeps the most prominent maxima at least ``min_distance`` apart, refined to
sub-pixel by a parabola through the neighbours. Of the two, the optic disc is the one whose
neighbourhood is brighter in the green channel of the photograph (the disc is the brightest
structure, the fovea the darkest).
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


def disc_and_fovea(peaks: list[Peak], image: np.ndarray, *, radius: float) -> tuple[Peak, Peak] | None:
    """(disc, fovea) from two peaks on the same grid as the RGB ``image``; None with fewer than two."""
    if len(peaks) < 2:
        return None
    a, b = peaks[:2]
    green = np.asarray(image)[..., 1]
    return (a, b) if _mean_around(green, a, radius) >= _mean_around(green, b, radius) else (b, a)


def _mean_around(channel: np.ndarray, p: Peak, radius: float) -> float:
    h, w = channel.shape
    r = max(1, int(round(radius)))
    x0, x1 = max(int(round(p.x)) - r, 0), min(int(round(p.x)) + r + 1, w)
    y0, y1 = max(int(round(p.y)) - r, 0), min(int(round(p.y)) + r + 1, h)
    patch = channel[y0:y1, x0:x1]
    return float(patch.mean()) if patch.size else 0.0
