"""Finding the circular field of view (FOV) of a fundus photograph, and cutting views inside it.

Fundus cameras image a disc of retina on a plain surround. The FOV circle gives the square that
the locator sees (centre = circle centre, side = diameter), whatever the camera's aspect ratio
or however the circle is clipped at the frame's edges. Real borders are not clean circles on
black: the surround may be grey or white, cameras cut a notch into the circle or clip it with
straight edges, and text or scale bars sit in the corners. So the surround's colour is read
from the corners, the retina is what differs from it, and the circle is fitted robustly to the
retina's outline (points on the frame's edge left out, outliers trimmed). Every view is then
cut with black outside the circle, so a model never sees what lies outside the retina.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import Affine, square_transform, warp

_WORK_SIZE = 256  # detection runs on a thumbnail; the circle is scaled back exactly
_CORNER = 0.06  # corner patches read for the surround's colour, as a fraction of each side
_MASK_MARGIN = 0.015  # views keep this fraction of the radius beyond the fitted circle


@dataclass(frozen=True)
class FieldOfView:
    center: tuple[float, float]  # (x, y) in original pixels
    radius: float
    found: bool  # False: no retina at all (e.g. an all-black image); the whole frame is used
    circular: bool = True  # False where the retina fills the frame: nothing outside it to black out

    def view_transform(self, size: int) -> Affine:
        """Original pixels -> the ``size``² square around the circle: the full view every model sees."""
        return square_transform(self.center, 2.0 * self.radius, size)

    def cut(self, image: np.ndarray, affine: Affine, size: int) -> np.ndarray:
        """``warp(image, affine, size)`` with black outside the circle (and outside the frame)."""
        view = warp(image, affine, size)
        if self.circular:
            inside = np.zeros((size, size), np.uint8)
            cx, cy = affine(self.center)
            radius = self.radius * (1.0 + _MASK_MARGIN) * affine.scale
            f = 1 << 4  # OpenCV's fixed-point shift: the circle placed to 1/16 px
            cv2.circle(inside, (round(cx * f), round(cy * f)), max(round(radius * f), 0), 1, -1, cv2.LINE_8, 4)
            view *= inside[..., None] if view.ndim == 3 else inside
        return view


def detect_field_of_view(image: np.ndarray) -> FieldOfView:
    """Fit the FOV circle of an RGB uint8 image."""
    h, w = image.shape[:2]
    # An integer box shrink (OpenCV's fast INTER_AREA path); the thumbnail's pixel i covers
    # original pixels [i * k, (i + 1) * k), so centres map back exactly.
    k = max(1, -(-max(h, w) // _WORK_SIZE))
    small = (
        image
        if k == 1
        else cv2.resize(image[: h // k * k, : w // k * k], (w // k, h // k), interpolation=cv2.INTER_AREA)
    )
    surround = _plain_surround(small)
    if surround is not None:  # a grey or white surround: the retina is what differs from it
        difference = np.abs(small.astype(np.int16) - surround.astype(np.int16)).max(axis=2).astype(np.uint8)
        fov = _fit(difference, k, w, h, min_area=0.2)
        if fov is not None:
            return fov
    fov = _fit(small.max(axis=2), k, w, h, min_area=0.0)  # a black surround: the retina is what is bright
    if fov is not None:
        return fov
    return FieldOfView(((w - 1) / 2.0, (h - 1) / 2.0), max(w, h) / 2.0, False, False)


def _plain_surround(small: np.ndarray) -> np.ndarray | None:
    """The surround's colour where at least three of the four corner patches are plain and agree on
    one that is not black (a caption or a logo may take the fourth), else None."""
    h, w = small.shape[:2]
    ch, cw = max(2, int(_CORNER * h)), max(2, int(_CORNER * w))
    corners = [small[:ch, :cw], small[:ch, -cw:], small[-ch:, :cw], small[-ch:, -cw:]]
    plain = np.array([np.median(c.reshape(-1, 3), axis=0) for c in corners if float(c.std()) < 12])
    if len(plain) < 3:
        return None
    surround = np.median(plain, axis=0)
    agree = int((np.abs(plain - surround).max(axis=1) < 12).sum())
    return surround if agree >= 3 and surround.max() >= 12 else None


def _fit(difference: np.ndarray, k: int, w: int, h: int, *, min_area: float) -> FieldOfView | None:
    """The circle around the largest region that differs from the surround (``difference`` on the
    thumbnail, ``k`` original pixels per thumbnail pixel); None where there is no such region."""
    peak = float(np.percentile(difference, 99))
    if peak < 10:  # nothing but sensor noise
        return None
    # The retina at the FOV edge is dim (vignetting), the surround is flat.
    inside = (difference > np.clip(0.15 * peak, 8, 40)).astype(np.uint8)
    inside = cv2.morphologyEx(inside, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < min_area * inside.size:
        return None
    contours, _ = cv2.findContours((labels == largest).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    edge = max(contours, key=len).reshape(-1, 2).astype(np.float64)
    sh, sw = difference.shape
    # Points on the frame's border are where the camera clipped the circle, not the circle itself.
    free = (edge[:, 0] > 0) & (edge[:, 0] < sw - 1) & (edge[:, 1] > 0) & (edge[:, 1] < sh - 1)
    if free.sum() < 0.1 * len(edge) or free.sum() < 8:  # the retina fills the frame
        return FieldOfView(((w - 1) / 2.0, (h - 1) / 2.0), max(w, h) / 2.0, True, False)
    (cx, cy), r = _robust_circle(edge[free])
    # Contour points are pixel centres on the inside edge: the boundary lies half a pixel out.
    r += 0.5
    return FieldOfView(((cx + 0.5) * k - 0.5, (cy + 0.5) * k - 0.5), r * k, True)


def _robust_circle(points: np.ndarray) -> tuple[tuple[float, float], float]:
    """A circle fitted to outline points, refitted without the points far from it: a notch, a
    straight clip or text touching the circle are a minority of the outline and fall away."""
    keep = np.ones(len(points), bool)
    for _ in range(4):
        (cx, cy), r = _fit_circle(points[keep])
        residual = np.abs(np.hypot(points[:, 0] - cx, points[:, 1] - cy) - r)
        tolerance = max(1.5, 3.0 * float(np.median(residual[keep])))
        new = residual <= tolerance
        if new.sum() < max(8, 0.3 * len(points)) or (new == keep).all():
            break
        keep = new
    return _fit_circle(points[keep])


def _fit_circle(points: np.ndarray) -> tuple[tuple[float, float], float]:
    """Least-squares (Kasa) circle: x² + y² + D x + E y + F = 0."""
    x, y = points[:, 0], points[:, 1]
    a = np.column_stack([x, y, np.ones_like(x)])
    d, e, f = np.linalg.lstsq(a, -(x * x + y * y), rcond=None)[0]
    cx, cy = -d / 2.0, -e / 2.0
    return (float(cx), float(cy)), float(np.sqrt(max(cx * cx + cy * cy - f, 0.0)))
