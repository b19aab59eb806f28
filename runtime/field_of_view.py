"""Finding the circular field of view (FOV) of a fundus photograph.

Fundus cameras image a disc of retina on black. The FOV circle gives the square that the
locator sees (centre = circle centre, side = diameter), whatever the camera's aspect ratio
or however the circle is clipped at the frame's edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import Affine, square_transform

_WORK_SIZE = 256  # detection runs on a thumbnail; the circle is scaled back exactly


@dataclass(frozen=True)
class FieldOfView:
    center: tuple[float, float]  # (x, y) in original pixels
    radius: float
    found: bool  # False: no bright region at all (e.g. an all-black image); the whole frame is used

    def square(self) -> tuple[tuple[float, float], float]:
        """(centre, side) of the square that holds the circle."""
        return self.center, 2.0 * self.radius

    def view_transform(self, size: int) -> Affine:
        """Original pixels -> the ``size``² square around the circle: the full view every model sees."""
        return square_transform(self.center, 2.0 * self.radius, size)


def detect_field_of_view(image: np.ndarray) -> FieldOfView:
    """Fit the FOV circle of an RGB uint8 image."""
    h, w = image.shape[:2]
    whole_frame = FieldOfView(((w - 1) / 2.0, (h - 1) / 2.0), max(w, h) / 2.0, False)
    # An integer box shrink (OpenCV's fast INTER_AREA path); the thumbnail's pixel i covers
    # original pixels [i * k, (i + 1) * k), so centres map back exactly.
    k = max(1, -(-max(h, w) // _WORK_SIZE))
    small = (
        image
        if k == 1
        else cv2.resize(image[: h // k * k, : w // k * k], (w // k, h // k), interpolation=cv2.INTER_AREA)
    )
    scale = 1.0 / k
    brightness = small.max(axis=2)
    peak = float(np.percentile(brightness, 99))
    if peak < 10:  # nothing but sensor noise
        return whole_frame
    # The retina at the FOV edge is dim (vignetting), the background is near zero.
    inside = (brightness > np.clip(0.15 * peak, 8, 40)).astype(np.uint8)
    inside = cv2.morphologyEx(inside, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=8)
    if count < 2:
        return whole_frame
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    contours, _ = cv2.findContours((labels == largest).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    edge = max(contours, key=len).reshape(-1, 2).astype(np.float64)
    sh, sw = brightness.shape
    # Points on the frame's border are where the camera clipped the circle, not the circle itself.
    free = (edge[:, 0] > 0) & (edge[:, 0] < sw - 1) & (edge[:, 1] > 0) & (edge[:, 1] < sh - 1)
    if free.sum() < 0.1 * len(edge) or free.sum() < 8:
        return FieldOfView(whole_frame.center, whole_frame.radius, True)  # retina fills the frame
    (cx, cy), r = _fit_circle(edge[free])
    # Contour points are pixel centres on the inside edge: the boundary lies half a pixel out.
    r += 0.5
    to_original = 1.0 / scale
    return FieldOfView(((cx + 0.5) * to_original - 0.5, (cy + 0.5) * to_original - 0.5), r * to_original, True)


def _fit_circle(points: np.ndarray) -> tuple[tuple[float, float], float]:
    """Least-squares (Kasa) circle: x² + y² + D x + E y + F = 0."""
    x, y = points[:, 0], points[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    d, e, f = np.linalg.lstsq(a, -(x * x + y * y), rcond=None)[0]
    cx, cy = -d / 2.0, -e / 2.0
    return (float(cx), float(cy)), float(np.sqrt(max(cx * cx + cy * cy - f, 0.0)))
