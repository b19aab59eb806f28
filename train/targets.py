"""Training targets from ground truth: disc/cup planes and the bi-distance map.

The bi-distance map (Meyer et al. 2018):
    B(x, y)   = min(|(x, y) - disc centre|, |(x, y) - fovea|)
    B^N(x, y) = (1 - B(x, y) / max_Omega B) ** gamma,   gamma = 7
on the grid of pixel centres (x = 0 .. W-1, y = 0 .. H-1) of the image the model sees. Where the
photograph does not show the fovea (beyond its field of view), the map has the disc's bump alone:
the model learns to mark what it can see, and the runtime then reports no fovea.
"""

from __future__ import annotations

import numpy as np

from fundusrt.runtime.constants import GAMMA
from fundusrt.runtime.masks import decode_refuge


def disc_cup_planes(mask: np.ndarray) -> np.ndarray:
    """REFUGE-coded (H, W) mask -> (2, H, W) float32: [disc (including the cup), cup]."""
    disc, cup = decode_refuge(mask)
    return np.stack([disc, cup]).astype(np.float32)


def bi_distance_map(shape, disc_center, fovea, *, gamma: float = GAMMA) -> np.ndarray:
    """B^N on an (H, W) grid, float32 in [0, 1], 1 at each landmark; ``fovea`` None: the disc alone."""
    h, w = int(shape[0]), int(shape[1])
    xs = np.arange(w, dtype=np.float64)[None, :]
    ys = np.arange(h, dtype=np.float64)[:, None]
    b = np.hypot(xs - disc_center[0], ys - disc_center[1])
    if fovea is not None:
        b = np.minimum(b, np.hypot(xs - fovea[0], ys - fovea[1]))
    peak = b.max()
    if peak == 0:  # a single pixel on both landmarks
        return np.ones((h, w), np.float32)
    return ((1.0 - b / peak) ** gamma).astype(np.float32)
