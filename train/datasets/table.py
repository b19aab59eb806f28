"""A user's own photographs, listed in a CSV table: ``csv:PATH``.

One row per photograph; a header names the columns, in any order. Only ``image`` is required:

    image        path of the photograph, relative to the table's folder (or absolute)
    mask         optional disc/cup annotation at the image's size, coded as ``mask_coding`` says:
    mask_coding  ``refuge`` (default: 0 cup, 128 rim, 255 background) or ``labels``
                 (0 background, 1 rim, 2 cup)
    disc_mask, cup_mask   instead of ``mask``: two binary images, inside where the pixel is > 127
    glaucoma     1 glaucoma, 0 normal, empty unknown
    fovea_x, fovea_y, disc_x, disc_y   landmarks in the image's pixels, both or neither of a pair
    split        optional: train, validation, test or all (the default)
    dataset      optional: the source the photograph comes from (default: the table's file name)

The dataset is named after the table's file name (``mycamera.csv`` -> ``mycamera``) unless a row
names its own; it is what leave-one-dataset-out holds out and what training balances sources by. A bad row is reported in one line naming the row and the
problem, and left out; the rest of the table is used.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from .sample import DatasetLayoutError, Sample, require

COLUMNS = (
    "image", "mask", "mask_coding", "disc_mask", "cup_mask", "glaucoma",
    "fovea_x", "fovea_y", "disc_x", "disc_y", "split", "dataset",
)  # fmt: skip
CODINGS = ("refuge", "labels")
SPLITS = ("train", "validation", "test", "all")
BINARY_THRESHOLD = 127


class RowError(ValueError):
    """One row that cannot become a sample; the message says why."""


def load_table(path: Path, *, log=None) -> list[Sample]:
    """Samples of every good row of the table at ``path``; each bad row gets one line on ``log``
    (stderr by default) naming the table, the row (the header is row 1) and the problem."""
    path = require(Path(path), "csv")
    if path.is_dir():
        raise DatasetLayoutError(f"csv: {path} is a folder; give the table's path")
    log = log or (lambda line: print(line, file=sys.stderr))
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [c.strip() for c in (reader.fieldnames or [])]
        if "image" not in header:
            raise DatasetLayoutError(f"{path}: no 'image' column (columns: {', '.join(header) or 'none'})")
        unknown = [c for c in header if c not in COLUMNS]
        if unknown:
            raise DatasetLayoutError(f"{path}: unknown column {unknown[0]!r} (known: {', '.join(COLUMNS)})")
        samples = []
        for number, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            if not any(row.values()):
                continue  # blank line
            try:
                samples.append(_sample(row, path.parent, path.stem))
            except RowError as e:
                log(f"skipping {path} row {number}: {e}")
    return samples


def _sample(row: dict, folder: Path, dataset: str) -> Sample:
    image = _file(row, "image", folder, required=True)
    coding = row.get("mask_coding") or "refuge"
    if coding not in CODINGS:
        raise RowError(f"mask_coding {coding!r} is not one of {', '.join(CODINGS)}")
    mask = _file(row, "mask", folder)
    disc_mask, cup_mask = _file(row, "disc_mask", folder), _file(row, "cup_mask", folder)
    if mask and (disc_mask or cup_mask):
        raise RowError("give either mask or disc_mask and cup_mask, not both")
    if bool(disc_mask) != bool(cup_mask):
        raise RowError("disc_mask and cup_mask come together")
    if mask:
        masks = {"mask_files": (mask,), "mask_coding": coding}
    elif disc_mask:
        masks = {"mask_files": (disc_mask, cup_mask), "mask_coding": "pair", "mask_threshold": BINARY_THRESHOLD}
    else:
        masks = {}
    split = row.get("split") or "all"
    if split not in SPLITS:
        raise RowError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    return Sample(
        image=image,
        dataset=row.get("dataset") or dataset,
        split=split,
        label=_label(row.get("glaucoma", "")),
        fovea=_point(row, "fovea"),
        disc_center=_point(row, "disc"),
        **masks,
    )


def _file(row: dict, column: str, folder: Path, *, required: bool = False) -> Path | None:
    text = row.get(column, "")
    if not text:
        if required:
            raise RowError(f"no {column} path")
        return None
    path = Path(text).expanduser()
    path = path if path.is_absolute() else folder / path
    if not path.is_file():
        raise RowError(f"{column} {path} does not exist")
    return path


def _label(text: str) -> int | None:
    if text == "":
        return None
    if text not in ("0", "1"):
        raise RowError(f"glaucoma {text!r} is not 1, 0 or empty")
    return int(text)


def _point(row: dict, name: str) -> tuple[float, float] | None:
    x, y = row.get(f"{name}_x", ""), row.get(f"{name}_y", "")
    if x == "" and y == "":
        return None
    if x == "" or y == "":
        raise RowError(f"{name}_x and {name}_y come together")
    try:
        point = (float(x), float(y))
    except ValueError:
        raise RowError(f"{name} ({x!r}, {y!r}) is not a pair of numbers") from None
    if not all(math.isfinite(v) and v >= 0 for v in point):
        raise RowError(f"{name} ({x}, {y}) must be finite and not negative")
    return point


def write_table(samples, path: Path) -> Path:
    """Write samples as a ``csv:`` table (absolute paths), so that a split can be trained on and scored
    by name. Samples that a table cannot express (a cropped image, soft maps with their own threshold)
    are refused by name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for s in samples:
            if s.crop is not None or (s.mask_coding == "pair" and s.mask_threshold != BINARY_THRESHOLD):
                raise ValueError(f"{s.image}: a table cannot express its crop or mask threshold")
            mask = s.mask_files[0].resolve() if s.mask_coding in CODINGS else ""
            pair = [m.resolve() for m in s.mask_files] if s.mask_coding == "pair" else ["", ""]
            writer.writerow([
                s.image.resolve(), mask, s.mask_coding if mask else "", *pair,
                "" if s.label is None else s.label,
                *(s.fovea or ("", "")), *(s.disc_center or ("", "")), s.split, s.dataset,
            ])  # fmt: skip
    return path
