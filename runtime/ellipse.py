"""Ellipses fitted to segmented regions: the smooth disc and cup outlines the vCDR is read from.

``fit_largest_region`` keeps the largest connected component of a binary mask and fits an
ellipse to its outline with ``cv2.fitEllipse``. Outline points are pixel centres on the inner
edge, half a pixel inside the true boundary, so both axes grow by one pixel to compensate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import Affine


@dataclass(frozen=True)
class Ellipse:
    center: tuple[float, float]  # (x, y)
    axes: tuple[float, float]  # full lengths: the first along ``angle``, the second across it
    angle: float  # degrees, as OpenCV draws it (clockwise as seen, y pointing down)

    @property
    def vertical_diameter(self) -> float:
        """Height of the ellipse's bounding box: its extent along the image's columns."""
        a, b = self.axes[0] / 2.0, self.axes[1] / 2.0
        t = math.radians(self.angle)
        return 2.0 * math.sqrt((a * math.sin(t)) ** 2 + (b * math.cos(t)) ** 2)

    def mapped(self, affine: Affine) -> Ellipse:
        """This ellipse through a similarity map (scale, rotation, shift; what every crop is)."""
        m = affine.matrix
        scale = affine.scale
        rotation = math.degrees(math.atan2(m[1, 0], m[0, 0]))
        (x, y) = affine(self.center)
        return Ellipse((float(x), float(y)), (self.axes[0] * scale, self.axes[1] * scale), self.angle + rotation)

    def mask(self, shape) -> np.ndarray:
        """Boolean (H, W) mask of the pixels whose centres lie inside the ellipse (exact, not drawn)."""
        h, w = shape[:2]
        out = np.zeros((h, w), bool)
        a, b = self.axes[0] / 2.0, self.axes[1] / 2.0
        if a <= 0 or b <= 0:
            return out
        half_w = self.axes[0] / 2.0 + self.axes[1] / 2.0  # a box that surely holds it
        cx, cy = self.center
        x0, x1 = max(int(math.floor(cx - half_w)), 0), min(int(math.ceil(cx + half_w)) + 1, w)
        y0, y1 = max(int(math.floor(cy - half_w)), 0), min(int(math.ceil(cy + half_w)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return out
        t = math.radians(self.angle)
        dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        dx -= cx
        dy -= cy
        u = dx * math.cos(t) + dy * math.sin(t)
        v = -dx * math.sin(t) + dy * math.cos(t)
        out[y0:y1, x0:x1] = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        return out

    def outline(self, image: np.ndarray, colour, thickness: int) -> np.ndarray:
        """Draw the outline on ``image`` in place, anti-aliased, to 1/16 px."""
        f = 1 << 4  # OpenCV's fixed-point shift of 4 bits
        center = (round(self.center[0] * f), round(self.center[1] * f))
        axes = (max(round(self.axes[0] / 2 * f), 0), max(round(self.axes[1] / 2 * f), 0))
        cv2.ellipse(image, center, axes, self.angle, 0, 360, colour, thickness, cv2.LINE_AA, 4)
        return image

    def to_dict(self) -> dict:
        return {
            "center": [round(self.center[0], 2), round(self.center[1], 2)],
            "axes": [round(self.axes[0], 2), round(self.axes[1], 2)],
            "angle": round(self.angle, 2),
            "vertical_diameter": round(self.vertical_diameter, 2),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Ellipse:
        return cls(tuple(d["center"]), tuple(d["axes"]), float(d["angle"]))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a boolean mask (all False when there is none)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return np.zeros(mask.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def fit_largest_region(mask: np.ndarray) -> Ellipse | None:
    """Ellipse of the largest region's outline; None when the region is too small to fit (< 5 outline points)."""
    region = largest_component(np.asarray(mask, bool))
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    outline = max(contours, key=len)
    if len(outline) < 5:
        return None
    (cx, cy), (w, h), angle = cv2.fitEllipse(outline)
    return Ellipse((float(cx), float(cy)), (float(w) + 1.0, float(h) + 1.0), float(angle))
