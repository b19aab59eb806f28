"""Pictures for a person: disc and cup outlines, disc centre and fovea drawn on the photograph."""

from __future__ import annotations

import cv2
import numpy as np

from .ellipse import Ellipse
from .masks import decode_refuge

DISC_COLOUR = (80, 255, 80)  # RGB
CUP_COLOUR = (80, 160, 255)
FOVEA_COLOUR = (255, 255, 0)


def draw_overlay(
    image: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    disc: Ellipse | None = None,
    cup: Ellipse | None = None,
    disc_center=None,
    fovea=None,
    lines: tuple[str, ...] = (),
) -> np.ndarray:
    """A copy of the RGB image with the outlines (of a REFUGE-coded mask, or of the disc and cup
    ellipses), the disc centre and fovea, and text lines."""
    out = image.copy()
    h, w = out.shape[:2]
    thickness = max(1, round(max(h, w) / 500))
    if mask is not None:
        for region, colour in zip(decode_refuge(mask), (DISC_COLOUR, CUP_COLOUR)):
            contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, colour, thickness, cv2.LINE_AA)
    for ellipse, colour in ((disc, DISC_COLOUR), (cup, CUP_COLOUR)):
        if ellipse is not None:
            ellipse.outline(out, colour, thickness)
    marker = 6 * thickness
    for point, colour, shape in (
        (disc_center, DISC_COLOUR, cv2.MARKER_CROSS),
        (fovea, FOVEA_COLOUR, cv2.MARKER_TILTED_CROSS),
    ):
        if point is not None:
            cv2.drawMarker(out, (round(point[0]), round(point[1])), colour, shape, 2 * marker, thickness, cv2.LINE_AA)
    scale = max(h, w) / 1400
    for i, text in enumerate(lines):
        origin = (round(20 * scale), round((45 + 45 * i) * scale))
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 4 * thickness, cv2.LINE_AA)
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
