"""Classical image-quality grading of a fundus photograph: can it be screened, and if not, why.

Numpy and OpenCV only. Every measure but one is read on a fixed 256² view of the field of view
(FOV) so that none depends on the camera's resolution: the FOV's square is cut at 512² and box-shrunk
by two (anti-aliased at any input size; a warp's bilinear step alone aliases, and the focus measure
then drifts with the resolution). Only JPEG blockiness is read on the original pixels, whose 8×8 grid
it looks for. Cost: 6-8 ms per photograph at 512², 8-16 ms at 1200-4000 px (2-core CPU, shared).

The measures (``Quality.measures``) and the threshold at which each gives its reason:

``sharpness`` (< 0.38: ``out_of_focus``)
    RMS of the green channel's finest band (G - G*σ1) over that of the next band (G*σ1 - G*σ3) inside
    the FOV, the view's 8-bit rounding noise taken out. Blur empties the finest band first; a ratio,
    so dark but sharp photographs are not "blurred".
``blockiness`` (> 0.7: ``compression_artifacts``, heavy JPEG)
    Mean |step| between neighbouring pixels on each of the 8 column (and row) phases, green channel,
    original pixels, a window of up to 384² at the FOV centre: the strongest phase's excess over the
    second, relative to it plus one grey level. JPEG's grid lifts one phase (wherever the grid starts).
``luminance`` (< 32: ``underexposed``; > 160: ``overexposed``)
    Mean luminance (0.299 R + 0.587 G + 0.114 B) inside the FOV.
``field_cut`` (> 0.12: ``field_of_view_cut``)
    The part of the fitted circle's area cut off by one side of the frame beyond what the opposite
    side cuts off: cameras that clip the circle top and bottom alike lose nothing here, a shifted
    field does. ``field_missing`` (all that the frame cuts off) is reported only.
``haze`` (> 0.85: ``uneven_illumination``, lens flare)
    In 8 sectors of the ring 0.3-0.85 radii (the disc left out), log(brightest sector's blue / the
    median's) + log(median sector's colour saturation / the palest's): a white veil over one side
    raises its blue and bleaches its colour. Not read where red is clipped over half the FOV.
``shadow`` (> 0.62: ``uneven_illumination``, a dark side)
    log(median / darkest) of the luminance of 12 sectors of the ring 0.55-0.95 radii (the disc left
    out), where a misaligned pupil's crescent falls.
``disc_contrast`` (< 0.07) and ``disc_inside`` (< 0.6): ``disc_not_visible``
    The disc's mean luminance over that of the ring 1.3-2 disc radii around it, minus one (the disc is
    the bright spot), and the part of its ellipse inside the FOV and the frame. A disc that was not
    found (``disc=None``) is not visible: a glaucoma screening has nothing to read without it.

``dark_fraction`` (luminance < 20), ``saturated_fraction`` (> 235) and ``red_clipped`` (red >= 250)
are reported for calibration. Each measure maps to a score by a logistic that is 0.5 at its threshold
and 0.9 at a "good" value (``_LIMITS``); ``Quality.score`` is the lowest score. Below 0.5 a reason is
severe and the photograph ungradable; between 0.5 and ``NOTICE`` (0.7) it is listed but only noticed.

Calibration (``benchmarks/quality_calibration.py``): REFUGE's 400 validation photographs (Canon CR-2,
512² JPEG) and 40 phantoms, clean and with each strong degradation of ``fundusrt.train.degradations``
(worst clean value -> least flagged degraded value): sharpness 0.561 (phantoms 0.695) -> 0.236;
blockiness 0.149 (phantoms 0.365: JPEG at quality 70-95 shows on smooth synthetic fields) -> 2.18
(phantoms 0.84, JPEG quality 8); luminance 53.9-145.3 (phantoms 70-115) -> 29.1 underexposed, 149
overexposed (REFUGE's darkest photograph times 3; p1 195) and 158.5 (phantoms); field_cut 0.017
(phantoms' 4:3 frames) -> 0.251; haze p99 0.707, max 1.109 (a visible blue veil) -> 0.788 (p1
0.981); shadow p99 0.488, max 0.746 (a dark lower field) -> 0.563 (p1 0.720); disc_contrast 0.145
(phantoms 0.314), negative for a disc placed on the fovea. Thresholds sit between the clean
photographs' worst percentiles and the degraded ones, leaving room for cameras unlike REFUGE's:
99.2 % of REFUGE and all phantoms gradable; 97.5-100 % of each strong copy flagged with its reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .ellipse import Ellipse
from .field_of_view import FieldOfView
from .geometry import square_transform, warp

OUT_OF_FOCUS = "out_of_focus"
UNDEREXPOSED = "underexposed"
OVEREXPOSED = "overexposed"
FIELD_CUT = "field_of_view_cut"  # field of view partly outside the frame (e.g. a shifted field)
DISC_NOT_VISIBLE = "disc_not_visible"
UNEVEN_ILLUMINATION = "uneven_illumination"  # flare (a white veil) or a shadow over part of the field
COMPRESSION = "compression_artifacts"  # heavy JPEG: the 8×8 blocks show

NOTICE = 0.7  # a reason is listed below this score; below 0.5 it makes the photograph ungradable

_SIZE = 256  # the working view's side
_ROUNDING = 1.0 / 12.0  # variance of rounding to whole grey levels
_INNER_SECTORS = 8  # the ring 0.3-0.85 radii, where flare is read
_OUTER_SECTORS = 12  # the ring 0.55-0.95 radii, where a shadow is read (a crescent at the edge)

# measure -> (threshold: score 0.5, good: score 0.9, reason)
_LIMITS = {
    "sharpness": (0.38, 0.5, OUT_OF_FOCUS),
    "blockiness": (0.7, 0.35, COMPRESSION),
    "underexposure": (32.0, 55.0, UNDEREXPOSED),  # read on ``luminance``
    "overexposure": (160.0, 140.0, OVEREXPOSED),  # read on ``luminance``
    "field_cut": (0.12, 0.05, FIELD_CUT),
    "haze": (0.85, 0.55, UNEVEN_ILLUMINATION),
    "shadow": (0.62, 0.4, UNEVEN_ILLUMINATION),
    "disc_contrast": (0.07, 0.15, DISC_NOT_VISIBLE),
    "disc_inside": (0.6, 0.9, DISC_NOT_VISIBLE),
}


@dataclass(frozen=True)
class Quality:
    score: float  # 0..1, 1 = best: the lowest of the measures' scores
    gradable: bool
    reasons: tuple[str, ...]  # empty when gradable and nothing noticed
    measures: dict[str, float]  # the raw measures, for calibration and reports

    def to_dict(self) -> dict:
        return {"score": round(self.score, 3), "gradable": self.gradable, "reasons": list(self.reasons)}


def assess_quality(image: np.ndarray, fov: FieldOfView, disc: Ellipse | None = None) -> Quality:
    """Grade an RGB uint8 photograph given its field of view and the optic disc found in it (original
    pixels; None where none was found)."""
    measures = measure_quality(image, fov, disc)
    luminance = measures["luminance"]
    values = {
        "sharpness": measures["sharpness"],
        "blockiness": measures["blockiness"],
        "underexposure": luminance,
        "overexposure": luminance,
        "field_cut": measures["field_cut"],
        "haze": measures["haze"],
        "shadow": measures["shadow"],
    }
    if disc is not None:
        values["disc_contrast"] = measures["disc_contrast"]
        values["disc_inside"] = measures["disc_inside"]
    scores = {name: _score(value, *_LIMITS[name][:2]) for name, value in values.items()}
    if measures["red_clipped"] > 0.5:  # red clipped over most of the field: its colour says nothing of flare
        scores["haze"] = 1.0
    if disc is None:
        scores["disc_contrast"] = 0.0
    worst: dict[str, float] = {}  # reason -> the lowest score of its measures
    for name, score in scores.items():
        reason = _LIMITS[name][2]
        worst[reason] = min(score, worst.get(reason, 1.0))
    reasons = tuple(sorted((r for r, s in worst.items() if s < NOTICE), key=worst.__getitem__))  # the worst first
    score = min(worst.values())
    return Quality(score, score >= 0.5, reasons, measures)


def measure_quality(image: np.ndarray, fov: FieldOfView, disc: Ellipse | None = None) -> dict[str, float]:
    """The raw measures (see the module's docstring); the disc's only where a disc is given."""
    h, w = image.shape[:2]
    affine = fov.view_transform(_SIZE)
    view = _view(image, fov)
    # OpenCV's per-pixel ops and single channels throughout: numpy's reductions across channels are slow.
    red, green, blue = (c.astype(np.float32) for c in cv2.split(view))
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    rho, inner_sector, outer_sector = _polar()
    d = disc.mapped(affine) if disc is not None else None

    # The retina: inside the circle and inside the frame (the view is black beyond the frame). ``core``
    # keeps clear of their edges, whose steps would swamp the focus measure and the sectors' means.
    (x0, y0), (x1, y1) = affine([-0.5, -0.5]), affine([w - 0.5, h - 0.5])
    axis = np.arange(_SIZE, dtype=np.float32)
    frame = ((axis > y0) & (axis < y1))[:, None] & ((axis > x0) & (axis < x1))[None, :]
    inner = ((axis > y0 + 6) & (axis < y1 - 6))[:, None] & ((axis > x0 + 6) & (axis < x1 - 6))[None, :]
    retina = frame & (rho < 0.97) if fov.circular else frame
    core = inner & (rho < 0.88) if fov.circular else inner

    m: dict[str, float] = {}
    values = luma[retina]
    m["luminance"] = float(values.mean()) if values.size else 0.0
    m["dark_fraction"] = float((values < 20).mean()) if values.size else 1.0
    m["saturated_fraction"] = float((values > 235).mean()) if values.size else 0.0
    m["red_clipped"] = float((red[retina] >= 250).mean()) if values.size else 0.0

    # Focus: how much of the green channel's detail lies in the finest band rather than the next one.
    b1 = cv2.GaussianBlur(green, (0, 0), 1.0)
    b3 = cv2.GaussianBlur(b1, (0, 0), math.sqrt(3.0**2 - 1.0**2))  # the green blurred by 3 in all
    fine = float(np.square(green - b1)[core].mean()) if core.any() else 0.0
    mid = float(np.square(b1 - b3)[core].mean()) if core.any() else 0.0
    # The view's 8-bit rounding adds 1/12 grey level² of noise to every band: left out of the finest and
    # added to the next, so that a featureless (very blurred, or blank) view reads as blurred, not sharp.
    m["sharpness"] = math.sqrt(max(fine - _ROUNDING, 0.0) / (mid + _ROUNDING))

    m["blockiness"] = _blockiness(image, fov)

    # Illumination: sectors of rings clear of the centre (the macula) and of the disc, where a camera's
    # vignetting is the same all round; what differs between sectors is flare or shadow. Sector means
    # get 4 grey levels (a sensor's floor) so that black sectors stay finite.
    no_disc = np.ones((_SIZE, _SIZE), bool) if d is None else ~_grown(d, 2.0).mask((_SIZE, _SIZE))
    top = cv2.max(cv2.max(red, green), blue)
    saturation = (top - cv2.min(cv2.min(red, green), blue)) / (top + 8.0)
    blues, saturations = _sector_means(core & (rho > 0.3) & (rho < 0.85) & no_disc, inner_sector, blue, saturation)
    m["haze"] = 0.0  # too little field to compare sectors in
    if blues.size >= 4:
        whitest = np.log((blues.max() + 4.0) / (np.median(blues) + 4.0))
        palest = np.log(max(float(np.median(saturations)), 0.01) / max(float(saturations.min()), 0.01))
        m["haze"] = float(whitest + palest)
    (lum,) = _sector_means(inner & (rho > 0.55) & (rho < 0.95) & no_disc, outer_sector, luma)
    m["shadow"] = float(np.log((np.median(lum) + 4.0) / (lum.min() + 4.0))) if lum.size >= 6 else 0.0

    m["field_cut"], m["field_missing"] = _field_cut(fov, w, h)

    if d is not None:
        inside = d.mask((_SIZE, _SIZE))
        around = _grown(d, 2.0).mask((_SIZE, _SIZE)) & ~_grown(d, 1.3).mask((_SIZE, _SIZE)) & retina
        seen = inside & retina
        m["disc_inside"] = float(seen.sum() / max(inside.sum(), 1))
        m["disc_contrast"] = 0.0  # nothing to compare: not visible
        if seen.sum() >= 4 and around.sum() >= 4:
            ring = float(luma[around].mean())
            m["disc_contrast"] = (float(luma[seen].mean()) - ring) / (ring + 4.0)
    return m


def _grown(ellipse: Ellipse, factor: float) -> Ellipse:
    return Ellipse(ellipse.center, (factor * ellipse.axes[0], factor * ellipse.axes[1]), ellipse.angle)


def _view(image: np.ndarray, fov: FieldOfView) -> np.ndarray:
    """The ``_SIZE``² view of the field's square (black outside the frame): cut at twice the size and
    box-shrunk by two, so it is anti-aliased whatever the photograph's resolution (a warp's bilinear
    step alone aliases)."""
    # The circle's bounding box, then halvings (OpenCV's 2× box filter is its fastest path, several
    # times faster than other factors) while the field stays over twice the cut's size.
    h, w = image.shape[:2]
    (cx, cy), r = fov.center, fov.radius
    small = image
    if fov.circular:
        x0, y0 = min(max(int(cx - r) - 2, 0), w - 1), min(max(int(cy - r) - 2, 0), h - 1)
        small = image[y0 : max(min(int(cy + r) + 3, h), y0 + 1), x0 : max(min(int(cx + r) + 3, w), x0 + 1)]
        cx, cy = cx - x0, cy - y0
    while r >= 2 * _SIZE and min(small.shape[:2]) >= 4:
        sh, sw = small.shape[:2]
        small = cv2.resize(small[: sh // 2 * 2, : sw // 2 * 2], (sw // 2, sh // 2), interpolation=cv2.INTER_AREA)
        cx, cy, r = (cx + 0.5) / 2 - 0.5, (cy + 0.5) / 2 - 0.5, r / 2  # pixel centres: i -> (i + 0.5) / 2 - 0.5
    # A plain warp, not ``FieldOfView.cut``: every measure keeps to its own mask inside the circle.
    big = warp(small, square_transform((cx, cy), 2.0 * r, 2 * _SIZE), 2 * _SIZE)
    return cv2.resize(big, (_SIZE, _SIZE), interpolation=cv2.INTER_AREA)


def _sector_means(mask: np.ndarray, sector: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """Each array's mean in each sector (of the pixels in ``mask``), for sectors with enough pixels."""
    n = int(sector.max()) + 1
    labels = np.where(mask, sector, n).ravel()
    count = np.bincount(labels, minlength=n + 1)[:n]
    used = count >= 30
    return [(np.bincount(labels, a.ravel(), minlength=n + 1)[:n] / np.maximum(count, 1))[used] for a in arrays]


def _score(value: float, threshold: float, good: float) -> float:
    """0.5 at ``threshold``, 0.9 at ``good``, 0.1 as far beyond the threshold the other way: a logistic."""
    z = math.log(9.0) * (value - threshold) / (good - threshold)
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


@lru_cache(maxsize=1)
def _polar() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance from the view's centre in radii, and each pixel's sector of the inner and outer rings."""
    c = (_SIZE - 1) / 2.0
    yy, xx = np.mgrid[:_SIZE, :_SIZE].astype(np.float32) - c
    rho = np.hypot(xx, yy) / (_SIZE / 2.0)
    turn = (np.arctan2(yy, xx) + math.pi) / (2 * math.pi)  # 0..1 round the centre
    return (
        rho,
        (turn * _INNER_SECTORS).astype(np.int64) % _INNER_SECTORS,
        (turn * _OUTER_SECTORS).astype(np.int64) % _OUTER_SECTORS,
    )


def _field_cut(fov: FieldOfView, w: int, h: int) -> tuple[float, float]:
    """(the circle's area cut off by one side beyond the opposite side's cut, the whole area cut off)."""
    if not (fov.found and fov.circular):
        return 0.0, 0.0  # no circle: nothing known to be missing
    (cx, cy), r = fov.center, fov.radius
    left, right = _segment((cx + 0.5) / r), _segment((w - 0.5 - cx) / r)
    top, bottom = _segment((cy + 0.5) / r), _segment((h - 0.5 - cy) / r)
    return max(abs(left - right), abs(top - bottom)), min(left + right + top + bottom, 1.0)


def _segment(u: float) -> float:
    """The part of a circle's area beyond a line ``u`` radii from its centre."""
    u = min(max(u, -1.0), 1.0)
    return (math.acos(u) - u * math.sqrt(1.0 - u * u)) / math.pi


def _blockiness(image: np.ndarray, fov: FieldOfView) -> float:
    """How much larger the steps between neighbours are on JPEG's 8×8 grid than off it (0: no grid).

    Read on the original pixels (the grid is theirs), green channel, a window of up to 384² at the
    FOV centre. Each of the 8 phases of columns (and rows) gets its mean |step|: the strongest one's
    excess over the second, relative to the second plus a grey level (steps under a grey level are
    rounding). Against the second, not the median: a grid that starts anywhere is caught, and an
    image whose pixels come in pairs (upscaled, or shifted by half a pixel) lifts four phases alike."""
    h, w = image.shape[:2]
    half = int(min(192, 0.6 * fov.radius))
    cx, cy = fov.center
    x0, y0 = max(int(cx) - half, 0), max(int(cy) - half, 0)
    g = image[y0 : min(int(cy) + half, h), x0 : min(int(cx) + half, w), 1].astype(np.int16)
    if min(g.shape) < 32:
        return 0.0
    excess = []
    for steps in (np.abs(np.diff(g, axis=1)).mean(axis=0), np.abs(np.diff(g, axis=0)).mean(axis=1)):
        phases = np.sort(steps[: len(steps) // 8 * 8].reshape(-1, 8).mean(axis=0))
        excess.append((phases[-1] - phases[-2]) / (phases[-2] + 1.0))
    return float(np.mean(excess))
