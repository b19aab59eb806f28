"""Phantom fundus photographs with exact ground truth.

No real fundus dataset is reachable here, so tests, the demo and the benchmarks run on
these. Each phantom looks like a colour fundus photograph: a circular field of view (FOV)
on black, an orange-red textured background with vignetting and uneven illumination, a
bright optic disc with a paler cup, a darker macula and fovea about 2.5 disc diameters
temporal of the disc, and a vessel tree leaving the disc along the superior and inferior
arcades; right and left eyes, square and 4:3 frames of 800-2200 px, blur and JPEG noise.

The disc and cup are ellipses, so the masks are exact; the vertical cup-to-disc ratio
drives the glaucoma label through a logistic link, so the classes overlap as in life.
Everything is drawn from ``numpy.random.default_rng([seed, index])``: phantom ``index`` of
``seed`` is the same array on every machine and in every process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from fundusrt.runtime.constants import FOVEA_DISTANCE_DD
from fundusrt.runtime.masks import encode_refuge, vertical_cdr, vertical_diameter

# The label: P(glaucoma | cup/disc ratio c) = sigmoid((c - CDR_MIDPOINT) / CDR_SPREAD).
CDR_MIDPOINT = 0.55
CDR_SPREAD = 0.045


@dataclass(frozen=True)
class PhantomTruth:
    """The ground truth of one phantom, in original pixels (x right, y down)."""

    eye: str  # "OD" (right eye: disc right of the fovea) or "OS"
    glaucoma: int
    width: int
    height: int
    disc_center: tuple[float, float]
    fovea: tuple[float, float]
    disc_diameter: float  # vertical, from the mask (REFUGE's definition)
    vcdr: float  # from the mask, REFUGE's definition
    fov_center: tuple[float, float]
    fov_radius: float
    jpeg_quality: int


@dataclass(frozen=True)
class Phantom:
    image: np.ndarray  # (H, W, 3) RGB uint8, before JPEG
    mask: np.ndarray  # (H, W) uint8, REFUGE coding
    truth: PhantomTruth


def render_phantom(seed: int, index: int, *, width: int | None = None) -> Phantom:
    """Draw phantom number ``index`` of the series ``seed`` (``width`` fixes the frame width)."""
    rng = np.random.default_rng([seed, index])
    g = _sample_geometry(rng, width)
    h, w = g["height"], g["width"]
    disc_field = _disc_field(g, h, w)
    disc, cup = _ellipse_masks(disc_field, h, w)
    image = _paint(rng, g, disc_field, h, w)
    mask = encode_refuge(disc, cup)
    truth = PhantomTruth(
        eye=g["eye"],
        glaucoma=g["glaucoma"],
        width=w,
        height=h,
        disc_center=g["disc_center"],
        fovea=g["fovea"],
        disc_diameter=vertical_diameter(disc),
        vcdr=vertical_cdr(disc, cup),
        fov_center=g["fov_center"],
        fov_radius=g["fov_radius"],
        jpeg_quality=g["jpeg_quality"],
    )
    return Phantom(image, mask, truth)


# ---------------------------------------------------------------------------- geometry


def _sample_geometry(rng: np.random.Generator, width: int | None) -> dict:
    square = rng.random() < 0.5
    drawn = int(rng.integers(800, 2201))
    width = int(width or drawn)
    height = width if square else int(round(width * 3 / 4))
    # Square frames hold the whole circle; 4:3 frames often clip it at top and bottom.
    radius = width * (rng.uniform(0.45, 0.49) if square else rng.uniform(0.36, 0.42))
    fov_center = (width / 2 + rng.normal(0, 0.01) * width, height / 2 + rng.normal(0, 0.01) * height)
    eye = "OD" if rng.random() < 0.5 else "OS"
    nasal = 1.0 if eye == "OD" else -1.0  # image-x direction from fovea to disc

    dd = 2 * radius * rng.uniform(0.13, 0.17)  # disc vertical diameter
    cdr = rng.uniform(0.2, 0.85)
    glaucoma = int(rng.random() < 1 / (1 + math.exp(-(cdr - CDR_MIDPOINT) / CDR_SPREAD)))
    distance = FOVEA_DISTANCE_DD * dd * rng.uniform(0.92, 1.08)
    drop = dd * rng.uniform(0.1, 0.45)  # the fovea lies a little below the disc
    # The FOV centre sits between fovea and disc, nearer the fovea (macula-centred photographs).
    t = rng.uniform(0.15, 0.45)
    fovea = (
        fov_center[0] - nasal * t * distance + rng.normal(0, 0.03) * radius,
        fov_center[1] + 0.5 * drop + rng.normal(0, 0.03) * radius,
    )
    disc_center = (fovea[0] + nasal * distance, fovea[1] - drop)

    disc_axes = (dd / 2 * rng.uniform(0.86, 0.98), dd / 2)  # (horizontal, vertical) semi-axes
    cup_v = cdr * disc_axes[1]
    cup_axes = (min(cup_v * rng.uniform(0.75, 1.0) * (0.9 if glaucoma else 1.0), 0.9 * disc_axes[0]), cup_v)
    slack = (disc_axes[0] - cup_axes[0], disc_axes[1] - cup_axes[1])
    cup_center = (  # cups sit a little temporal (towards the fovea) in the disc
        disc_center[0] - nasal * slack[0] * rng.uniform(0.0, 0.5),
        disc_center[1] + slack[1] * rng.uniform(-0.3, 0.3),
    )
    return dict(
        width=width,
        height=height,
        eye=eye,
        nasal=nasal,
        glaucoma=glaucoma,
        fov_center=(float(fov_center[0]), float(fov_center[1])),
        fov_radius=float(radius),
        fovea=(float(fovea[0]), float(fovea[1])),
        disc_center=(float(disc_center[0]), float(disc_center[1])),
        disc_axes=disc_axes,
        cup_center=cup_center,
        cup_axes=cup_axes,
        tilt=math.radians(rng.uniform(-8, 8)),
        dd=dd,
        jpeg_quality=int(rng.integers(70, 96)),
    )


def _patch(center, half: float, h: int, w: int):
    """The integer box of half-size ``half`` around ``center``, clipped to the frame, and its pixel grids."""
    x0, x1 = max(int(center[0] - half), 0), min(int(center[0] + half) + 2, w)
    y0, y1 = max(int(center[1] - half), 0), min(int(center[1] + half) + 2, h)
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    return (slice(y0, y1), slice(x0, x1)), xs, ys


def _ellipse_radius(xs, ys, center, axes, tilt) -> np.ndarray:
    """Normalised elliptical radius: < 1 inside the ellipse, 1 on its boundary."""
    dx, dy = xs - center[0], ys - center[1]
    c, s = math.cos(tilt), math.sin(tilt)
    u, v = dx * c + dy * s, -dx * s + dy * c
    return np.sqrt((u / axes[0]) ** 2 + (v / axes[1]) ** 2)


def _disc_field(g: dict, h: int, w: int):
    """The box around the disc and the normalised elliptical radii of disc and cup in it."""
    box, xs, ys = _patch(g["disc_center"], g["dd"] * 1.2, h, w)
    rho_disc = _ellipse_radius(xs, ys, g["disc_center"], g["disc_axes"], g["tilt"])
    rho_cup = _ellipse_radius(xs, ys, g["cup_center"], g["cup_axes"], g["tilt"])
    return box, rho_disc, rho_cup


def _ellipse_masks(disc_field, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    box, rho_disc, rho_cup = disc_field
    disc = np.zeros((h, w), bool)
    cup = np.zeros((h, w), bool)
    disc[box] = rho_disc < 1
    cup[box] = (rho_cup < 1) & (rho_disc < 1)
    return disc, cup


# ---------------------------------------------------------------------------- painting


def _smooth_noise(rng, h: int, w: int, cells: int) -> np.ndarray:
    """Band-limited noise: a coarse random grid upsampled by bicubic interpolation."""
    gh, gw = max(2, round(cells * h / max(h, w))), max(2, cells)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


_FIELD_SIZE = 256  # smooth fields (light, texture, macula) are painted at this size, then upsampled


def _paint(rng, g: dict, disc_field, h: int, w: int) -> np.ndarray:
    # Smooth fields at low resolution, upsampled once; only the disc, the vessels and the
    # FOV edge need full resolution.
    scale = min(1.0, _FIELD_SIZE / max(h, w))
    lh, lw = max(2, round(h * scale)), max(2, round(w * scale))
    xs = (np.arange(lw, dtype=np.float32)[None, :] + 0.5) * (w / lw) - 0.5  # original x of low-res pixels
    ys = (np.arange(lh, dtype=np.float32)[:, None] + 0.5) * (h / lh) - 0.5
    cx, cy = g["fov_center"]
    radius = g["fov_radius"]
    dx, dy = xs - cx, ys - cy
    r = np.sqrt(dx * dx + dy * dy) * (1.0 / radius)  # 1 at the FOV edge

    # Illumination: vignetting, a tilted gradient, texture of choroid and nerve fibres.
    angle = rng.uniform(0, 2 * math.pi)
    light = 1.0 - rng.uniform(0.3, 0.55) * np.minimum(r, 1.2) ** 2.5
    light += rng.uniform(0.0, 0.18) * (dx * math.cos(angle) + dy * math.sin(angle)) / radius
    light *= 1.0 + 0.06 * _smooth_noise(rng, lh, lw, 12) + 0.03 * _smooth_noise(rng, lh, lw, 48)
    light *= rng.uniform(0.75, 1.1)
    base = np.array([rng.uniform(0.78, 0.95), rng.uniform(0.27, 0.4), rng.uniform(0.07, 0.15)], np.float32)
    low = light[..., None] * base * _macula_shade(rng, g, xs, ys)
    rgb = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)

    disc_light = light[min(int(g["disc_center"][1] * scale), lh - 1), min(int(g["disc_center"][0] * scale), lw - 1)]
    _paint_disc(rng, rgb, g, disc_field, float(disc_light))
    vessels = _vessel_layer(rng, g, h, w)
    # The FOV: a circle on black, clipped by the frame where it is larger.
    fov = np.zeros((h, w), np.uint8)
    cv2.circle(fov, (round(cx * 16), round(cy * 16)), round(radius * 16), 255, -1, cv2.LINE_AA, shift=4)
    channels = list(cv2.split(cv2.convertScaleAbs(rgb, alpha=255.0)))
    for c, strength in enumerate((0.5, 0.72, 0.65)):  # vessels: dark red, darker in green and blue
        keep = cv2.convertScaleAbs(vessels, alpha=-strength, beta=255)  # 255 * (1 - strength * v)
        channels[c] = cv2.multiply(cv2.multiply(channels[c], keep, scale=1 / 255), fov, scale=1 / 255)
    image = cv2.merge(channels)
    sigma = rng.uniform(0.3, 1.6) * max(w, h) / 1400
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _macula_shade(rng, g: dict, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Per-channel darkening of the macula and the foveal pit (separable Gaussians)."""
    dd = g["dd"]
    fx, fy = g["fovea"]
    depth = rng.uniform(0.25, 0.4), rng.uniform(0.15, 0.3)
    shade = 1.0
    for amount, sigma in zip(depth, (0.55 * dd, 0.12 * dd)):
        shade = shade - amount * np.exp(-((xs - fx) ** 2) / (2 * sigma**2)) * np.exp(-((ys - fy) ** 2) / (2 * sigma**2))
    return shade[..., None] * np.array([1.0, 0.9, 0.95], np.float32) + np.array([0, 0.1, 0.05], np.float32) * (
        shade[..., None] ** 2
    )


def _paint_disc(rng, rgb: np.ndarray, g: dict, disc_field, light: float) -> None:
    box, rho_disc, rho_cup = disc_field
    edge = g["dd"] * 0.03  # blur of the disc margin, in pixels
    a_disc = np.clip((1.0 - rho_disc) * (g["disc_axes"][1] / edge) + 0.5, 0, 1)
    a_cup = np.clip((1.0 - rho_cup) * (g["cup_axes"][1] / (2 * edge)) + 0.5, 0, 1) * a_disc
    # A faint peripapillary halo just outside the margin.
    halo = 0.15 * np.exp(-((np.maximum(rho_disc - 1.0, 0.0) / 0.25) ** 2)) * (1 - a_disc)
    rim = np.array([0.98, rng.uniform(0.55, 0.68), rng.uniform(0.3, 0.42)], np.float32)
    pale = np.array([1.0, rng.uniform(0.86, 0.95), rng.uniform(0.66, 0.8)], np.float32)
    gain = np.float32(np.clip(light * rng.uniform(1.05, 1.25), 0.6, 1.15))
    colour = (rim + (pale - rim) * a_cup[..., None]) * gain
    target = rgb[box]
    target += (halo + a_disc)[..., None] * (colour - target)


# ---------------------------------------------------------------------------- vessels


def _vessel_layer(rng, g: dict, h: int, w: int) -> np.ndarray:
    """An 8-bit map of vessel opacity: veins 255, arteries lighter, anti-aliased."""
    layer = np.zeros((h, w), np.uint8)
    dd, nasal = g["dd"], g["nasal"]
    temporal = -nasal
    start = g["cup_center"]
    fov = (g["fov_center"], g["fov_radius"])
    fovea = g["fovea"]
    # (initial heading, target heading, length in disc diameters, width scale) per trunk;
    # headings as (dx, dy) with y down. The temporal arcades bend around the macula.
    trunks = [
        ((0.2 * temporal, -1.0), (temporal, 0.12), 5.5, 1.0),  # superior temporal
        ((0.2 * temporal, 1.0), (temporal, -0.12), 5.5, 1.0),  # inferior temporal
        ((-0.6 * temporal, -1.0), (-temporal, -0.4), 3.0, 0.7),  # superior nasal
        ((-0.6 * temporal, 1.0), (-temporal, 0.4), 3.0, 0.7),  # inferior nasal
    ]
    for h0, ht, length, scale in trunks:
        for _kind, width, shade, turn in (("vein", 0.075, 255, 0.0), ("artery", 0.055, 175, 0.14)):
            theta0 = math.atan2(h0[1], h0[0]) + rng.uniform(-0.12, 0.12) + (turn if h0[1] < 0 else -turn)
            _grow(
                rng,
                layer,
                start,
                theta0,
                math.atan2(ht[1], ht[0]),
                length * dd,
                width * dd * scale,
                shade,
                0,
                dd,
                fov,
                fovea,
            )
    return layer


def _grow(rng, layer, point, theta, target, length, width, shade, depth, dd, fov, fovea) -> None:
    """Grow one vessel as a wandering curve pulled towards ``target`` heading, branching as it goes."""
    step = 0.18 * dd
    pull = rng.uniform(0.05, 0.09) if depth == 0 else rng.uniform(0.08, 0.16)
    x, y = point
    points = [(x, y)]
    travelled = 0.0
    (fx0, fy0), fov_radius = fov
    while travelled < length and width > 0.6:
        delta = (target - theta + math.pi) % (2 * math.pi) - math.pi
        theta += pull * delta + rng.normal(0, 0.12)
        x, y = x + step * math.cos(theta), y + step * math.sin(theta)
        travelled += step
        if math.hypot(x - fx0, y - fy0) > fov_radius * 0.99 or math.hypot(x - fovea[0], y - fovea[1]) < 0.5 * dd:
            break
        points.append((x, y))
        width *= 0.985
        if depth < 3 and rng.random() < 0.16 and travelled > 0.6 * dd:
            side = 1 if rng.random() < 0.5 else -1
            child = theta + side * rng.uniform(0.45, 1.1)
            _grow(
                rng,
                layer,
                (x, y),
                child,
                child + side * rng.uniform(-0.3, 0.5),
                (length - travelled) * rng.uniform(0.4, 0.8),
                width * rng.uniform(0.55, 0.75),
                shade,
                depth + 1,
                dd,
                fov,
                fovea,
            )
        if len(points) == 5:  # draw in short runs so the calibre tapers
            _draw(layer, points, width, shade)
            points = points[-1:]
    if len(points) > 1:
        _draw(layer, points, width, shade)


def _draw(layer, points, width, shade) -> None:
    shift = 4  # sub-pixel precision of cv2's drawing: coordinates in 1/16 px
    pts = np.round(np.asarray(points) * (1 << shift)).astype(np.int32)
    cv2.polylines(layer, [pts], False, int(shade), max(1, int(round(width))), cv2.LINE_AA, shift)
