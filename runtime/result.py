"""One screening result per input image, and its flat forms (JSON line, CSV row, REFUGE mask).

``ok`` says whether the image was processed; ``error`` is the one-line reason when not.
``flags`` name what a person should look at in a processed image (no field of view found,
landmarks not found and the disc placed by the fallback, no cup segmented, ungradable, ...).
``quality`` grades the photograph itself (``runtime/quality.py``); ``uncertainty`` is how far the ensemble's
members disagree, ``uncertain`` whether that reaches the bundle's threshold; ``refer`` says a
grader should see it: glaucoma, uncertain, ungradable or a disc of implausible size. Coordinates are ``[x, y]`` in the
original image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ellipse import Ellipse
from .postprocess import DiscCup
from .quality import Quality

# Flags a processed image can carry.
NO_FIELD_OF_VIEW = "no_field_of_view"  # nothing bright enough: the whole frame was used
LANDMARKS_NOT_FOUND = "landmarks_not_found"  # no peak in the locator's map: disc by the fallback, no fovea
FOVEA_NOT_FOUND = "fovea_not_found"  # a disc but no fovea (e.g. a disc-centred photograph): fovea null
FOVEA_OUTSIDE_IMAGE = "fovea_outside_image"  # the fovea fell beyond the frame: fovea null
LANDMARK_CLAMPED = "landmark_clamped"  # a landmark just outside the frame was moved onto its edge
DISC_OUTSIDE_IMAGE = "disc_outside_image"  # the segmented disc's centre lay outside the frame: dropped
DISC_NOT_SEGMENTED = "disc_not_segmented"  # no disc region in the crop: no vCDR
CUP_NOT_SEGMENTED = "cup_not_segmented"  # a disc but no cup: vCDR 0
UNGRADABLE = "ungradable"  # the photograph's quality is too poor to grade (screened all the same)
# the segmented disc is larger or smaller than a disc can be in this field of view (a bright lesion or glare
# taken for the disc, a dim disc): its vCDR is not read and a grader should see it
DISC_SIZE_IMPLAUSIBLE = "disc_size_implausible"


@dataclass
class Result:
    path: str
    ok: bool = False
    error: str | None = None
    glaucoma_probability: float | None = None  # the answer: the ensemble's, joined by the vCDR's where the bundle says
    glaucoma: bool | None = None
    ensemble_probability: float | None = None  # the mean of the members
    vcdr_probability: float | None = None  # the bundle's vCDR model at this vCDR
    members: dict[str, float] = field(default_factory=dict)
    vcdr: float | None = None
    disc: Ellipse | None = None
    cup: Ellipse | None = None
    disc_center: tuple[float, float] | None = None
    fovea: tuple[float, float] | None = None
    image_size: tuple[int, int] | None = None  # (width, height)
    quality: Quality | None = None
    uncertainty: float | None = None  # the members' spread: the standard deviation of their probabilities
    uncertain: bool | None = None  # the spread reaches the bundle's threshold (None: the bundle sets none)
    refer: bool | None = None  # glaucoma, uncertain or ungradable: a grader should see this one
    flags: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # side files written, relative to the output folder
    image: np.ndarray | None = field(default=None, repr=False, compare=False)  # only when asked to keep it
    # evidence pictures ("photograph", "disc": RGB arrays), only when asked for
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def refuge_mask(self) -> np.ndarray:
        """The disc and cup ellipses as a REFUGE-coded mask (0 cup, 128 rim, 255 background) at original size."""
        if self.image_size is None:
            raise ValueError(f"{self.path}: no mask for an image that was not processed")
        w, h = self.image_size
        return DiscCup(self.disc, self.cup).refuge_mask((h, w))

    def to_dict(self) -> dict:
        def point(p):
            return None if p is None else [round(float(p[0]), 2), round(float(p[1]), 2)]

        def number(x, digits=6):
            return None if x is None else round(float(x), digits)

        return {
            "path": self.path,
            "ok": self.ok,
            "error": self.error,
            "glaucoma_probability": number(self.glaucoma_probability),
            "glaucoma": self.glaucoma,
            "ensemble_probability": number(self.ensemble_probability),
            "vcdr_probability": number(self.vcdr_probability),
            "members": {k: number(v) for k, v in self.members.items()},
            "vcdr": number(self.vcdr, 4),
            "disc": self.disc.to_dict() if self.disc else None,
            "cup": self.cup.to_dict() if self.cup else None,
            "disc_center": point(self.disc_center),
            "fovea": point(self.fovea),
            "image_size": list(self.image_size) if self.image_size else None,
            "quality": self.quality.to_dict() if self.quality else None,
            "uncertainty": number(self.uncertainty),
            "uncertain": self.uncertain,
            "refer": self.refer,
            "flags": list(self.flags),
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "files": dict(self.files),
        }

    @classmethod
    def failed(cls, path: str, error: str) -> Result:
        return cls(path=path, ok=False, error=error)


CSV_COLUMNS = (
    "path", "ok", "error", "refer", "glaucoma_probability", "glaucoma", "ensemble_probability", "vcdr_probability",
    "uncertainty", "uncertain", "quality_score", "gradable", "quality_reasons", "vcdr",
    "disc_x", "disc_y", "fovea_x", "fovea_y", "disc_vertical_diameter", "cup_vertical_diameter",
    "width", "height", "flags",
)  # fmt: skip


def csv_row(record: dict) -> dict:
    """A JSON record (``Result.to_dict()``) as one flat CSV row."""
    disc, fovea = record.get("disc_center") or [None, None], record.get("fovea") or [None, None]
    size = record.get("image_size") or [None, None]
    quality = record.get("quality") or {}
    return {
        "path": record["path"],
        "ok": record["ok"],
        "error": record.get("error") or "",
        "refer": record.get("refer"),
        "glaucoma_probability": record.get("glaucoma_probability"),
        "glaucoma": record.get("glaucoma"),
        "ensemble_probability": record.get("ensemble_probability"),
        "vcdr_probability": record.get("vcdr_probability"),
        "uncertainty": record.get("uncertainty"),
        "uncertain": record.get("uncertain"),
        "quality_score": quality.get("score"),
        "gradable": quality.get("gradable"),
        "quality_reasons": ";".join(quality.get("reasons") or []),
        "vcdr": record.get("vcdr"),
        "disc_x": disc[0],
        "disc_y": disc[1],
        "fovea_x": fovea[0],
        "fovea_y": fovea[1],
        "disc_vertical_diameter": (record.get("disc") or {}).get("vertical_diameter"),
        "cup_vertical_diameter": (record.get("cup") or {}).get("vertical_diameter"),
        "width": size[0],
        "height": size[1],
        "flags": ";".join(record.get("flags") or []),
    }
