"""Classical image-quality grading of a fundus photograph: can it be screened, and if not, why.

Numpy and OpenCV only. Every measure but one is read on a fixed 256² view of the field of view
(FOV) so that none depends on the camera's resolution: the FOV's square is cut at 512² and box-shrunk
by two (anti-aliased at any input size; a warp's bilinear step alone aliases, and the focus measure
then drifts with the resolution). Only JPEG blockiness is read on the original pixels, whose 8×8 grid
it looks for. Cost: 9 ms per photograph at 512², 11 ms at 2048² (2-core CPU; the sectors' medians and
the radial profiles take about 5 ms of it).

Limits are relative to the photograph's own field and content, so that another camera's photograph
of a good eye passes: a disc-centred or 30-degree field, a darker exposure, a strong but smooth falloff
of brightness towards the field's edge (a normal trait of many cameras, no defect), another white
balance, 1500-2500 px. A crop around the disc with no field-of-view circle (ACRIMA's; also a "circle"
whose centre lies outside the frame: a bit of a field's edge in a corner) is graded on focus, exposure,
JPEG and the disc only; ``crop`` says so (1.0), and haze, shadow and field_cut read 0 there.

The measures (``Quality.measures``) and the threshold at which each gives its reason:

``sharpness`` (< 0.38: ``out_of_focus``)
    RMS of the green channel's finest band (G - G*σ1) over that of the next band (G*σ1 - G*σ3) inside
    the FOV, the view's 8-bit rounding noise taken out. Blur empties the finest band first; a ratio,
    so dark but sharp photographs are not "blurred". Where the disc spans more of the view than in a
    45-degree field (over 40 px: a narrow field, a crop), the view is first shrunk until it does not
    (at most 4×): the bands then hold the same anatomy, which the eye's optics blur at fine scales.
``blockiness`` (> 0.7: ``compression_artifacts``, heavy JPEG)
    Mean |step| between neighbouring pixels on each of the 8 column (and row) phases, green channel,
    original pixels, a window of up to 384² at the FOV centre: the strongest phase's excess over the
    second, relative to it plus one grey level. JPEG's grid lifts one phase (wherever the grid starts).
``luminance`` (< 32: ``underexposed``; > 160: ``overexposed``)
    Mean luminance (0.299 R + 0.587 G + 0.114 B) inside the FOV, the disc (1.5 of its radii) left
    out: a bright disc filling a crop is no overexposure.
``field_cut`` (> 0.15: ``field_of_view_cut``)
    The part of the fitted circle's area cut off by one side of the frame beyond what the opposite
    side cuts off: cameras that clip the circle top and bottom alike lose nothing here, a shifted
    field does (30 % of its diameter beyond the frame: 0.25; 22 % of it: 0.17). ``field_missing`` (all
    that the frame cuts off) is reported only.
``haze`` and ``shadow`` (uneven illumination), read on 16 sectors (their medians) of a ring clear of
    the centre and of the disc, each pixel first divided by the median of its radius all round: a
    camera's radial falloff, however strong, and its exposure and white balance cancel out, and only
    what differs between sides is left. A defect must then span an arc, where the macula of a
    disc-centred field, a vessel arcade, a glare spot or a patch of lesions takes a sector or two.
    Pixels black inside the circle (a narrow field cut from a wider one) are no retina and left out.
``haze`` (> 0.68: ``uneven_illumination``, lens flare)
    Ring 0.3-0.85 radii: per sector log(relative blue) - log(relative colour saturation), less its
    median over the sectors (a white veil raises the blue and bleaches the colour); the most veiled
    arc of 3 sectors, read at its least veiled one. Not read where red is clipped over half the FOV.
``shadow`` (> 0.57: ``uneven_illumination``, a dark side)
    Ring 0.55-0.95 radii, where a misaligned pupil's crescent falls: log(the sectors' median / a
    sector's relative luminance), the radius's profile its 75th percentile (so that a shadow over part
    of a clipped 4:3 field does not set it), the darkest arc of 2 sectors, read on its mean.
``disc_contrast`` (< 0.07) and ``disc_inside`` (< 0.6): ``disc_not_visible``
    The disc's mean luminance over that of the ring 1.3-2 disc radii around it, minus one (the disc is
    the bright spot), and the part of its ellipse inside the FOV and the frame. A disc that was not
    found (``disc=None``) is not visible: a glaucoma screening has nothing to read without it.

``dark_fraction`` (luminance < 20), ``saturated_fraction`` (> 235) and ``red_clipped`` (red >= 250)
are reported for calibration. Each measure maps to a score by a logistic that is 0.5 at its threshold
and 0.9 at a "good" value (``_LIMITS``); ``Quality.score`` is the lowest score. Below 0.5 a reason is
severe and the photograph ungradable; between 0.5 and ``NOTICE`` (0.7) it is listed but only noticed.

Calibration (``python benchmarks/quality_calibration.py``, defaults): REFUGE's 400 validation
photographs (Canon CR-2, 512² JPEG; ground-truth discs), every 4th of them as 5 other framings and 7
other cameras' looks (``train.reframe``: ``REFRAMINGS``, ``CAMERAS``), ACRIMA's 705 disc crops (another
camera; the disc a centred circle half the side wide) and 40 phantoms, clean and with each strong
degradation of ``fundusrt.train.degradations`` (worst clean value -> least flagged degraded value):
sharpness 0.534 (ACRIMA p1 0.362, phantoms 0.635) -> 0.290 (p1 0.169); blockiness as before, 0.149 ->
2.18; luminance 52.0-143.0 (ACRIMA p1-p99 40.7-162.6) -> 28.7 underexposed, 146 overexposed (p1 193);
field_cut 0 (phantoms 0.017; a frame cut 0.75 disc diameters beside the disc: 99 % gradable) -> 0.251; haze p99 0.584,
max 0.708 (framings and cameras p99 0.580) -> p1 0.661 (min 0.452); shadow p99 0.487, max 0.736
(framings and cameras p99 0.493) -> p1 0.791 (min 0.616, phantoms 0.638). Gradable: REFUGE 99.2 %,
ACRIMA 94.9 %, phantoms 100 %, each framing and camera 97-100 % (before: disc-centred fields 68-76 %,
a glare spot 49 %, ACRIMA 42 %); flagged with its reason: 98.8-100 % of each strong copy of REFUGE and
97.5-100 % of the phantoms' (ACRIMA's, reported only: 87.8 % of the overexposed, 97.9-100 % else).
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
_SECTORS = 16  # of both rings: 0.3-0.85 radii, where flare is read, and 0.55-0.95, where a shadow is
_VEIL_ARC, _SHADOW_ARC = 3, 2  # adjacent sectors a veil, a shadow must span
_DISC_VIEW = 40.0  # px: the disc's diameter in a 45-degree field's view (REFUGE: 32-49, median 37)

# measure -> (threshold: score 0.5, good: score 0.9, reason)
_LIMITS = {
    "sharpness": (0.38, 0.5, OUT_OF_FOCUS),
    "blockiness": (0.7, 0.35, COMPRESSION),
    "underexposure": (32.0, 55.0, UNDEREXPOSED),  # read on ``luminance``
    "overexposure": (160.0, 140.0, OVEREXPOSED),  # read on ``luminance``
    "field_cut": (0.15, 0.07, FIELD_CUT),
    "haze": (0.68, 0.45, UNEVEN_ILLUMINATION),
    "shadow": (0.57, 0.38, UNEVEN_ILLUMINATION),
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
    fov = _field(fov, w, h)
    affine = fov.view_transform(_SIZE)
    view = _view(image, fov)
    # OpenCV's per-pixel ops and single channels throughout: numpy's reductions across channels are slow.
    red, green, blue = (c.astype(np.float32) for c in cv2.split(view))
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    rho, sector = _polar()
    d = disc.mapped(affine) if disc is not None else None

    # The retina: inside the circle and inside the frame (the view is black beyond the frame). ``core``
    # keeps clear of their edges, whose steps would swamp the focus measure and the sectors' means.
    (x0, y0), (x1, y1) = affine([-0.5, -0.5]), affine([w - 0.5, h - 0.5])
    axis = np.arange(_SIZE, dtype=np.float32)
    frame = ((axis > y0) & (axis < y1))[:, None] & ((axis > x0) & (axis < x1))[None, :]
    inner = ((axis > y0 + 6) & (axis < y1 - 6))[:, None] & ((axis > x0 + 6) & (axis < x1 - 6))[None, :]
    retina = frame & (rho < 0.97) if fov.circular else frame
    core = inner & (rho < 0.88) if fov.circular else inner

    m: dict[str, float] = {"crop": 0.0 if fov.circular else 1.0}
    # Exposure of the retina around the disc: a bright disc filling a disc-centred crop is no overexposure.
    no_disc = np.ones((_SIZE, _SIZE), bool) if d is None else ~_grown(d, 1.5).mask((_SIZE, _SIZE))
    values = luma[retina & no_disc] if (retina & no_disc).sum() >= 0.25 * retina.sum() else luma[retina]
    m["luminance"] = float(values.mean()) if values.size else 0.0
    m["dark_fraction"] = float((values < 20).mean()) if values.size else 1.0
    m["saturated_fraction"] = float((values > 235).mean()) if values.size else 0.0
    m["red_clipped"] = float((red[retina] >= 250).mean()) if values.size else 0.0

    m["sharpness"] = _sharpness(green, core, d)
    m["blockiness"] = _blockiness(image, fov)

    m["haze"] = m["shadow"] = 0.0  # a crop has no field to compare sides of (nor room for the sectors)
    if fov.circular:
        m["haze"], m["shadow"] = _illumination(red, green, blue, luma, core, inner, rho, sector, d)

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


def _field(fov: FieldOfView, w: int, h: int) -> FieldOfView:
    """The field the measures are read on: a circle whose centre lies outside the frame is a crop of a
    field (ACRIMA's disc crops show a bit of the circle's edge in a corner), read as a crop."""
    (cx, cy), r = fov.center, fov.radius
    if fov.circular and not (-0.5 <= cx <= w - 0.5 and -0.5 <= cy <= h - 0.5):
        return FieldOfView(((w - 1) / 2.0, (h - 1) / 2.0), max(w, h) / 2.0, fov.found, False)
    return fov


def _sharpness(green: np.ndarray, core: np.ndarray, disc: Ellipse | None) -> float:
    """How much of the green channel's detail lies in the finest band rather than the next one, on a view
    no more magnified than a 45-degree field's: where the disc spans more than ``_DISC_VIEW`` pixels (a
    narrow field, a disc crop), the view is shrunk until it does not, so the bands hold the same anatomy
    (the eye's optics, not the camera, blur the finest detail of a magnified view)."""
    shrink = 1.0 if disc is None else min(max(float(np.mean(disc.axes)) / _DISC_VIEW, 1.0), 4.0)
    if shrink > 1.05:
        size = round(_SIZE / shrink)
        green = cv2.resize(green, (size, size), interpolation=cv2.INTER_AREA)
        core = cv2.resize(core.astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA) > 0
        core = cv2.erode(core.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # clear of the edge's step
    if not core.any():
        return 0.0
    b1 = cv2.GaussianBlur(green, (0, 0), 1.0)
    b3 = cv2.GaussianBlur(b1, (0, 0), math.sqrt(3.0**2 - 1.0**2))  # the green blurred by 3 in all
    fine = float(np.square(green - b1)[core].mean())
    mid = float(np.square(b1 - b3)[core].mean())
    # The view's 8-bit rounding adds 1/12 grey level² of noise to every band: left out of the finest and
    # added to the next, so that a featureless (very blurred, or blank) view reads as blurred, not sharp.
    return math.sqrt(max(fine - _ROUNDING, 0.0) / (mid + _ROUNDING))


def _illumination(red, green, blue, luma, core, inner, rho, sector, d: Ellipse | None) -> tuple[float, float]:
    """(haze, shadow) of a circular field, read on 16 sectors (their medians) of two rings clear of the
    centre (the macula of a macula-centred field) and of the disc.

    Each pixel is first taken relative to the median of its radius all round (``_relative``): a camera's
    falloff towards the field's edge, however strong, and a darker or differently balanced camera, cancel
    out; only what differs between sides remains. A defect must then span an arc: a veil 3 adjacent
    sectors, read at the least veiled (a glare spot or a patch of exudates takes one or two); a shadow 2,
    read on their mean. Black pixels inside the circle are no retina (a narrow field cut from a wider
    one) and are left out. The luminance's profile is its 75th percentile at each radius: a shadow over
    most of what a clipped 4:3 frame keeps of an outer radius would otherwise set it."""
    no_disc = np.ones(rho.shape, bool) if d is None else ~_grown(d, 2.0).mask(rho.shape)
    lit = luma > 1.5
    top = cv2.max(cv2.max(red, green), blue)
    saturation = (top - cv2.min(cv2.min(red, green), blue)) / (top + 8.0)

    ring = core & (rho > 0.3) & (rho < 0.85) & no_disc & lit
    haze = 0.0  # too little field to compare sectors in
    if ring.sum() >= 200:
        blue_floor = 4.0 + 0.1 * float(np.median(blue[ring]))  # a sensor's floor, and a dim blue's noise
        blues = _sector_medians(ring, sector, _relative(blue, ring, rho, blue_floor))
        saturations = _sector_medians(ring, sector, _relative(saturation, ring, rho, 0.02))
        veil = np.log(blues) - np.log(saturations)  # a white veil raises the blue and bleaches the colour
        haze = _arc(veil - np.nanmedian(veil), _VEIL_ARC, np.min) if np.isfinite(veil).sum() >= 8 else 0.0

    ring = inner & (rho > 0.55) & (rho < 0.95) & no_disc & lit
    shadow = 0.0
    if ring.sum() >= 200:
        lum = _sector_medians(ring, sector, _relative(luma, ring, rho, 1.0, 75.0))
        dark = np.log(np.nanmedian(lum)) - np.log(lum)
        shadow = _arc(dark, _SHADOW_ARC, np.mean) if np.isfinite(dark).sum() >= 8 else 0.0
    return float(haze), float(shadow)


def _relative(values: np.ndarray, mask: np.ndarray, rho: np.ndarray, floor: float, q: float = 50.0) -> np.ndarray:
    """``values`` over the ``q``-th percentile of the ring's pixels (``mask``) at the same radius (bins of
    0.05 radii), each plus ``floor`` (a sensor's floor), so that sides are compared at equal distances
    from the centre."""
    band = np.minimum((rho * 20).astype(np.int32), 20)
    profile = np.ones(21, np.float32)
    inside = band[mask]
    picked = values[mask]
    for b in np.unique(inside):
        profile[b] = np.percentile(picked[inside == b], q)
    return (values + floor) / (profile[band] + floor)


def _arc(values: np.ndarray, length: int, read) -> float:
    """The strongest arc of ``length`` adjacent sectors (NaN where a sector had too few pixels), each arc
    read by ``read`` over its sectors (all but one of them needed); 0 where none is stronger."""
    n = len(values)
    best = 0.0
    for start in range(n):
        arc = values[[(start + i) % n for i in range(length)]]
        arc = arc[np.isfinite(arc)]
        if arc.size >= length - 1:
            best = max(best, float(read(arc)))
    return best


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


def _sector_medians(mask: np.ndarray, sector: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The median of ``values`` in each sector (of the pixels in ``mask``); NaN where a sector has too few.
    Medians: a thin black crescent of a shifted field's edge, lesions or a vessel do not move them."""
    out = np.full(_SECTORS, np.nan)
    labels, picked = sector[mask], values[mask]
    for i in range(_SECTORS):
        inside = picked[labels == i]
        if inside.size >= 20:
            out[i] = np.median(inside)
    return out


def _score(value: float, threshold: float, good: float) -> float:
    """0.5 at ``threshold``, 0.9 at ``good``, 0.1 as far beyond the threshold the other way: a logistic."""
    z = math.log(9.0) * (value - threshold) / (good - threshold)
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


@lru_cache(maxsize=1)
def _polar() -> tuple[np.ndarray, np.ndarray]:
    """Distance from the view's centre in radii, and each pixel's sector."""
    c = (_SIZE - 1) / 2.0
    yy, xx = np.mgrid[:_SIZE, :_SIZE].astype(np.float32) - c
    rho = np.hypot(xx, yy) / (_SIZE / 2.0)
    turn = (np.arctan2(yy, xx) + math.pi) / (2 * math.pi)  # 0..1 round the centre
    return rho, (turn * _SECTORS).astype(np.int64) % _SECTORS


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
