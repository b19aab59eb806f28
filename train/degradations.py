"""Degraded copies of a fundus photograph: what the runtime's quality grading must catch.

Each function takes an RGB uint8 image and one strength parameter and returns a new RGB uint8
image; nothing is random, so a copy is the same on every machine. Strengths are relative to the
photograph (sigmas and shifts as fractions of its size or of its field of view), so one setting
means the same at 512 px and at 2200 px.

``DEGRADATIONS`` holds each at a *strong* setting (a photograph no grader would read) with the
reason ``fundusrt.runtime.quality`` must give; ``MILD`` holds a milder setting of each, which the
calibration benchmark reports but does not target (some of those copies are still readable).
``degrade`` makes either copy and moves the optic disc's ellipse along with a shifted field.

Both flare (a white veil) and shadow (a dark crescent) are uneven illumination; the strong shift
puts 30 % of the field's diameter beyond the frame (a quarter of its area), the mild one 10 %.
"""

from __future__ import annotations

import math
from functools import partial

import cv2
import numpy as np

from fundusrt.runtime.ellipse import Ellipse
from fundusrt.runtime.field_of_view import FieldOfView, detect_field_of_view
from fundusrt.runtime.quality import (
    COMPRESSION,
    FIELD_CUT,
    OUT_OF_FOCUS,
    OVEREXPOSED,
    UNDEREXPOSED,
    UNEVEN_ILLUMINATION,
)


def blur(image: np.ndarray, sigma: float = 0.008) -> np.ndarray:
    """Defocus: a Gaussian blur of ``sigma`` times the image's longer side."""
    s = sigma * max(image.shape[:2])
    return cv2.GaussianBlur(image, (0, 0), s) if s > 0 else image.copy()


def underexpose(image: np.ndarray, gain: float = 0.2) -> np.ndarray:
    """Too little light: every value times ``gain`` (< 1)."""
    return cv2.convertScaleAbs(image, alpha=gain)


def overexpose(image: np.ndarray, gain: float = 3.0) -> np.ndarray:
    """Too much light: every value times ``gain`` (> 1), clipped at white as a sensor saturates."""
    return cv2.convertScaleAbs(image, alpha=gain)


def shift_field(image: np.ndarray, fraction: float = 0.3, direction: str = "right") -> np.ndarray:
    """A decentred field: the photograph translated (black filling in) until ``fraction`` of the field
    of view's diameter lies beyond the frame's ``direction`` side ("left", "right", "up", "down")."""
    h, w = image.shape[:2]
    dx, dy = field_shift(image, fraction, direction)
    matrix = np.float64([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def field_shift(image: np.ndarray, fraction: float = 0.3, direction: str = "right") -> tuple[float, float]:
    """The (dx, dy) in pixels that ``shift_field`` moves the photograph by: add it to points (the disc)."""
    h, w = image.shape[:2]
    fov = _field(image)
    (cx, cy), r = fov.center, fov.radius
    overshoot = fraction * 2.0 * r  # the circle's far point goes this far beyond the frame's last pixel
    if direction == "right":
        return (w - 0.5 + overshoot) - (cx + r), 0.0
    if direction == "left":
        return (-0.5 - overshoot) - (cx - r), 0.0
    if direction == "down":
        return 0.0, (h - 0.5 + overshoot) - (cy + r)
    if direction == "up":
        return 0.0, (-0.5 - overshoot) - (cy - r)
    raise ValueError(f"direction is left, right, up or down, got {direction!r}")


def flare(image: np.ndarray, strength: float = 0.8, angle: float = 225.0) -> np.ndarray:
    """Lens flare: a whitish haze over one side of the field (centred 0.6 radii out at ``angle``
    degrees, counter-clockwise from the right as seen, 0.45 radii wide), blending the retina up to
    ``strength`` of the way to white; the black surround stays black."""
    h, w = image.shape[:2]
    fov = _field(image)
    r = fov.radius
    t = math.radians(angle)
    cx, cy = fov.center[0] + 0.6 * r * math.cos(t), fov.center[1] - 0.6 * r * math.sin(t)
    sigma = 0.45 * r
    # Separable Gaussian: cheap at full resolution.
    gx = np.exp(-(((np.arange(w, dtype=np.float32) - cx) / sigma) ** 2) / 2)
    gy = np.exp(-(((np.arange(h, dtype=np.float32) - cy) / sigma) ** 2) / 2)
    alpha = (strength * gy[:, None] * gx[None, :])[..., None]
    white = np.array([255.0, 248.0, 235.0], np.float32)  # glare is white with a warm cast
    out = image.astype(np.float32) * (1 - alpha) + white * alpha
    retina = image.max(axis=2, keepdims=True) > 8  # the camera's field stop keeps the surround dark
    return np.where(retina, np.clip(out + 0.5, 0, 255), image).astype(np.uint8)


def shadow(image: np.ndarray, strength: float = 0.85, angle: float = 45.0) -> np.ndarray:
    """A dark crescent, as a small pupil or a misaligned camera casts: brightness falls smoothly from
    a quarter of the radius out to ``1 - strength`` at the field's edge towards ``angle`` degrees
    (counter-clockwise from the right as seen)."""
    h, w = image.shape[:2]
    fov = _field(image)
    t = math.radians(angle)
    # How far each pixel lies towards ``angle``, in radii from the centre.
    x = (np.arange(w, dtype=np.float32) - fov.center[0]) * (math.cos(t) / fov.radius)
    y = (np.arange(h, dtype=np.float32) - fov.center[1]) * (-math.sin(t) / fov.radius)
    ramp = np.clip((x[None, :] + y[:, None] - 0.25) / 0.75, 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no edge of its own
    return (image.astype(np.float32) * (1.0 - strength * ramp)[..., None] + 0.5).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int = 8) -> np.ndarray:
    """Heavy JPEG compression at ``quality`` (OpenCV's 0-100 scale, 4:2:0 chroma as usual)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode the image as JPEG")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _field(image: np.ndarray) -> FieldOfView:
    """The photograph's field of view; the whole frame's inscribed circle where none is found."""
    fov = detect_field_of_view(image)
    if fov.found and fov.circular:
        return fov
    h, w = image.shape[:2]
    return FieldOfView(((w - 1) / 2.0, (h - 1) / 2.0), min(w, h) / 2.0, True)


def degrade(
    name: str, image: np.ndarray, disc: Ellipse | None = None, *, mild: bool = False
) -> tuple[np.ndarray, Ellipse | None]:
    """The ``name`` copy of ``image`` at the strong (or ``mild``) setting, and ``disc`` (the optic disc's
    ellipse in the image's pixels) moved along with it where the copy moves the photograph."""
    function = MILD[name] if mild else DEGRADATIONS[name][0]
    if disc is not None and function.func is shift_field:
        dx, dy = field_shift(image, *function.args, **function.keywords)
        disc = Ellipse((disc.center[0] + dx, disc.center[1] + dy), disc.axes, disc.angle)
    return function(image), disc


# name -> (strong copy, the reason the quality grading must give it)
DEGRADATIONS = {
    "blur": (partial(blur, sigma=0.008), OUT_OF_FOCUS),
    "underexpose": (partial(underexpose, gain=0.2), UNDEREXPOSED),
    "overexpose": (partial(overexpose, gain=3.0), OVEREXPOSED),
    "shift_field": (partial(shift_field, fraction=0.3), FIELD_CUT),
    "flare": (partial(flare, strength=0.8), UNEVEN_ILLUMINATION),
    "shadow": (partial(shadow, strength=0.85), UNEVEN_ILLUMINATION),
    "jpeg": (partial(jpeg, quality=8), COMPRESSION),
}

# name -> a milder copy: reported by the calibration benchmark, not targeted
MILD = {
    "blur": partial(blur, sigma=0.003),
    "underexpose": partial(underexpose, gain=0.45),
    "overexpose": partial(overexpose, gain=1.6),
    "shift_field": partial(shift_field, fraction=0.1),
    "flare": partial(flare, strength=0.4),
    "shadow": partial(shadow, strength=0.5),
    "jpeg": partial(jpeg, quality=25),
}
