"""A photograph as another camera or another sitting would have framed it, with its truth moved along.

Each function takes an RGB image and its ``Truth`` (REFUGE-coded mask, fovea, disc centre, all in
its pixels) and returns the new photograph and its truth: the same eye at another resolution,
centred on the disc with the fovea beyond the frame, with the disc near the frame's edge, with
lens glare brighter than the disc, on a grey 4:3 frame, with lesions, or with a dim disc. ``benchmarks/real_refuge.py`` screens
held-out photographs reframed these ways to show what holds beyond the dataset's own framing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fundusrt.runtime.field_of_view import detect_field_of_view
from fundusrt.runtime.geometry import Affine, square_transform
from fundusrt.runtime.masks import BACKGROUND, decode_refuge, vertical_diameter


@dataclass(frozen=True)
class Truth:
    mask: np.ndarray  # REFUGE-coded, at the image's size
    fovea: tuple[float, float] | None
    disc_center: tuple[float, float]

    @property
    def disc_diameter(self) -> float:
        return vertical_diameter(decode_refuge(self.mask)[0])

    def moved(self, affine: Affine, size: tuple[int, int]) -> Truth:
        """This truth through ``affine`` onto a (width, height) frame; a fovea that leaves it is None."""
        w, h = size
        mask = cv2.warpAffine(self.mask, affine.matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=BACKGROUND)
        fovea = None
        if self.fovea is not None:
            x, y = affine(self.fovea)
            fovea = (float(x), float(y)) if 0 <= x <= w - 1 and 0 <= y <= h - 1 else None
        x, y = affine(self.disc_center)
        return Truth(mask, fovea, (float(x), float(y)))


def truth_of(sample) -> Truth:
    mask = sample.load_mask()
    ys, xs = np.nonzero(mask < BACKGROUND)
    return Truth(mask, sample.fovea, sample.disc_center or (float(xs.mean()), float(ys.mean())))


def _warp(image: np.ndarray, truth: Truth, affine: Affine, size: tuple[int, int], interpolation=cv2.INTER_LINEAR):
    out = cv2.warpAffine(image, affine.matrix, size, flags=interpolation, borderValue=0)
    return out, truth.moved(affine, size)


def upscaled(image: np.ndarray, truth: Truth, width: int = 4096) -> tuple[np.ndarray, Truth]:
    """The same photograph at ``width`` pixels (bicubic), as a high-resolution camera would give it."""
    h, w = image.shape[:2]
    s = width / w
    affine = Affine([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5]])  # pixel centres to pixel centres
    return _warp(image, truth, affine, (width, round(h * s)), cv2.INTER_CUBIC)


def disc_centred(image: np.ndarray, truth: Truth, *, field: float = 0.62) -> tuple[np.ndarray, Truth]:
    """A disc-centred photograph of a narrower field: the disc in the middle, the circle ``field`` times
    the original's radius, so the fovea (about 0.8 radii from the disc) lies beyond its edge."""
    fov = detect_field_of_view(image)
    side = 2.0 * field * fov.radius
    h, w = image.shape[:2]
    affine = square_transform(truth.disc_center, side, w)
    out, moved = _warp(image, truth, affine, (w, w))
    yy, xx = np.mgrid[:w, :w]
    out[np.hypot(xx - (w - 1) / 2, yy - (w - 1) / 2) > w / 2] = 0
    fovea = moved.fovea
    if fovea is not None and np.hypot(*np.subtract(fovea, (w - 1) / 2)) > w / 2:
        fovea = None  # inside the square but beyond the circle
    return out, Truth(moved.mask, fovea, moved.disc_center)


def disc_at_edge(image: np.ndarray, truth: Truth, *, margin_dd: float = 0.75) -> tuple[np.ndarray, Truth]:
    """The frame cut ``margin_dd`` disc diameters beyond the disc centre, on the disc's side: the disc
    whole but near the edge, its 2-diameter crop running outside the frame."""
    h, w = image.shape[:2]
    cx = truth.disc_center[0]
    cut = margin_dd * truth.disc_diameter
    if cx < w / 2:  # the disc on the left: cut the left off
        x0 = max(int(round(cx - cut)), 0)
        affine = Affine([[1, 0, -x0], [0, 1, 0]])
        return _warp(image, truth, affine, (w - x0, h), cv2.INTER_NEAREST)
    x1 = min(int(round(cx + cut)) + 1, w)
    return _warp(image, truth, Affine.identity(), (x1, h), cv2.INTER_NEAREST)


def with_glare(image: np.ndarray, truth: Truth) -> tuple[np.ndarray, Truth]:
    """Lens glare: a white haze, brighter than the disc, in the part of the field farthest from the disc."""
    fov = detect_field_of_view(image)
    direction = np.subtract(fov.center, truth.disc_center)
    direction = direction / (np.linalg.norm(direction) + 1e-9)
    centre = np.asarray(fov.center) + 0.75 * fov.radius * direction
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    haze = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * (0.18 * fov.radius) ** 2))
    inside = image.max(axis=2) > 0
    out = image.astype(np.float32) + (255.0 * 0.9 * haze * inside)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8), truth


def on_grey_frame(image: np.ndarray, truth: Truth) -> tuple[np.ndarray, Truth]:
    """A 4:3 frame on a grey surround, the circle clipped top and bottom, a caption in a corner."""
    h, w = image.shape[:2]
    fov = detect_field_of_view(image)
    width, height = round(w * 4 / 3), round(h * 0.9)
    affine = Affine([[1, 0, (width - w) / 2], [0, 1, -(h - height) / 2]])
    out, moved = _warp(image, truth, affine, (width, height), cv2.INTER_NEAREST)
    yy, xx = np.mgrid[:height, :width]
    cx, cy = affine(fov.center)
    out[np.hypot(xx - cx, yy - cy) > fov.radius] = (105, 105, 105)
    cv2.putText(out, "OS 2026-11-28", (8, height - 12), cv2.FONT_HERSHEY_SIMPLEX, h / 700, (255, 255, 255), 2)
    return out, moved


def with_lesions(image: np.ndarray, truth: Truth, *, seed: int = 0) -> tuple[np.ndarray, Truth]:
    """Diabetic retinopathy's lesions: a cluster of bright yellow-white exudates as large as a third of the
    disc, some brighter than it, one 1.5-3 disc diameters from the disc, and dark red haemorrhages
    scattered over the field (never on the disc itself, which stays the truth's)."""
    rng = np.random.default_rng(seed)
    fov = detect_field_of_view(image)
    dd = truth.disc_diameter
    out = image.copy()
    disc = np.asarray(truth.disc_center)
    away = np.asarray(fov.center) - disc
    angle = np.arctan2(away[1], away[0]) + rng.uniform(-0.8, 0.8)
    cluster = disc + rng.uniform(1.5, 3.0) * dd * np.array([np.cos(angle), np.sin(angle)])
    for _ in range(8):  # exudates: a cluster, the largest about a third of the disc across
        centre = cluster + rng.normal(0.0, 0.35 * dd, 2)
        radius = max(2, round(rng.uniform(0.05, 0.17) * dd))
        cv2.circle(out, tuple(int(round(v)) for v in centre), radius, (255, 245, 170), -1, cv2.LINE_AA)
    for _ in range(10):  # haemorrhages: dark blots anywhere in the field but on the disc
        r, a = fov.radius * np.sqrt(rng.uniform(0.05, 0.8)), rng.uniform(0.0, 2.0 * np.pi)
        centre = np.asarray(fov.center) + r * np.array([np.cos(a), np.sin(a)])
        if np.hypot(*(centre - disc)) < 1.2 * dd:
            continue
        cv2.circle(out, tuple(int(round(v)) for v in centre), max(2, round(rng.uniform(0.04, 0.12) * dd)),
                   (70, 10, 10), -1, cv2.LINE_AA)  # fmt: skip
    return out * (image.max(axis=2, keepdims=True) > 0), truth


def dim_disc(image: np.ndarray, truth: Truth, *, contrast: float = 0.3) -> tuple[np.ndarray, Truth]:
    """A dim disc: its brightness over the retina around it cut to ``contrast`` of what it was (a smooth
    blend out to 1.5 disc radii), as a cataract, a small pupil or a pale fundus gives it."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    radius = truth.disc_diameter / 2.0
    d = np.hypot(xx - truth.disc_center[0], yy - truth.disc_center[1]) / radius
    weight = np.clip(1.5 - d, 0.0, 1.0)[..., None]  # 1 on the disc, fading to 0 at 1.5 radii
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), float(radius))  # the retina around it
    out = image * (1.0 - weight * (1.0 - contrast)) + smooth * weight * (1.0 - contrast)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), truth


REFRAMINGS = {
    "4096 px": upscaled,
    "disc-centred, fovea beyond the edge": disc_centred,
    "disc at the frame's edge": disc_at_edge,
    "glare brighter than the disc": with_glare,
    "grey 4:3 frame, clipped, captioned": on_grey_frame,
}
# What must not move the disc or blow up its size: the disc within one disc diameter on every photograph
# and its Dice within 0.02 of the clean photograph's (``benchmarks/real_refuge.py`` measures it).
DISC_STAND_INS = {"exudates and haemorrhages": with_lesions, "dim disc": dim_disc}


# Other cameras' looks: the same eye as cameras unlike REFUGE's Canon CR-2 would photograph it. None is
# a defect, so the quality grading must pass every one (``benchmarks/quality_calibration.py`` checks).


def darker(image: np.ndarray, truth: Truth, *, gain: float = 0.65) -> tuple[np.ndarray, Truth]:
    """A darker camera (or a smaller pupil): every value times ``gain``."""
    return cv2.convertScaleAbs(image, alpha=gain), truth


def vignetted(image: np.ndarray, truth: Truth, *, edge: float = 0.4, offset: float = 0.08) -> tuple[np.ndarray, Truth]:
    """Strong but smooth vignetting: brightness falls as the radius squared to about ``edge`` times the
    centre's at the field's edge (on top of the photograph's own falloff), its centre ``offset`` radii
    off the field's (down and right), as a slightly misaligned illumination leaves it."""
    fov = detect_field_of_view(image)
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    shift = offset * fov.radius / np.sqrt(2.0)
    rho2 = ((xx - fov.center[0] - shift) ** 2 + (yy - fov.center[1] - shift) ** 2) / fov.radius**2
    light = 1.0 - (1.0 - edge) * np.minimum(rho2, 1.0)
    return np.clip(image * light[..., None] + 0.5, 0, 255).astype(np.uint8), truth


def white_balanced(image: np.ndarray, truth: Truth, *, gains=(1.0, 0.85, 0.55)) -> tuple[np.ndarray, Truth]:
    """Another white balance: each of R, G, B times its gain (the default warm: little blue)."""
    return np.clip(image * np.float32(gains) + 0.5, 0, 255).astype(np.uint8), truth


def narrow_field(image: np.ndarray, truth: Truth, *, width: int = 2048) -> tuple[np.ndarray, Truth]:
    """A 30-degree disc-centred field (two thirds of a 45-degree field's radius) at ``width`` pixels."""
    out, moved = disc_centred(image, truth, field=2.0 / 3.0)
    return upscaled(out, moved, width)


def other_camera(image: np.ndarray, truth: Truth) -> tuple[np.ndarray, Truth]:
    """All at once, as the cameras of other sites combine them: darker, strongly vignetted, warm, 2048 px
    wide on a 4:3 frame that clips the circle top and bottom."""
    out, truth = darker(*vignetted(*white_balanced(image, truth)), gain=0.75)
    out, truth = upscaled(out, truth, 2048)
    h = out.shape[0]
    top = round(h * 0.125)
    frame = Affine([[1, 0, 0], [0, 1, -top]])
    return _warp(out, truth, frame, (out.shape[1], h - 2 * top), cv2.INTER_NEAREST)


CAMERAS = {
    "darker camera (x0.65)": darker,
    "strong smooth vignetting (edge x0.4, off-centre)": vignetted,
    "warm white balance": white_balanced,
    "cool white balance": lambda image, truth: white_balanced(image, truth, gains=(0.8, 1.0, 1.35)),
    "30-degree disc-centred field, 2048 px": narrow_field,
    "2400 px": lambda image, truth: upscaled(image, truth, 2400),
    "darker, vignetted, warm, 4:3 at 2048 px": other_camera,
}
