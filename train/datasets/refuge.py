"""REFUGE (Orlando et al. 2020) in its published layout, and phantoms written by ``fundusrt synth``.

    Training400/{Glaucoma,Non-Glaucoma}/{g,n}0001.jpg
    Annotation-Training400/Disc_Cup_Masks/{Glaucoma,Non-Glaucoma}/*.bmp, Fovea_location.xlsx
    REFUGE-Validation400/V0001.jpg
    REFUGE-Validation400-GT/Disc_Cup_Masks/V0001.bmp, Fovea_locations.xlsx (with "Glaucoma Label")
    Test400/T0001.jpg
    REFUGE-Test-GT/Disc_Cup_Masks/{G,N}/T0001.bmp, Glaucoma_label_and_Fovea_location.xlsx

Any of the three parts may be present; a part whose images are there needs its annotations.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from ..xlsx import read_table
from .sample import GLAUCOMA, NORMAL, DatasetLayoutError, Sample, require


def load_refuge(root: Path, *, dataset: str = "refuge") -> list[Sample]:
    root = Path(root)
    require(root, dataset)
    parts = [
        ("Training400", _training),
        ("REFUGE-Validation400", _validation),
        ("Test400", _test),
    ]
    samples = []
    for folder, reader in parts:
        if (root / folder).is_dir():
            samples += reader(root, dataset)
    if not samples:
        raise DatasetLayoutError(
            f"{dataset}: missing {root / 'Training400'} (or REFUGE-Validation400, Test400): not a REFUGE folder"
        )
    return samples


def load_phantoms(root: Path) -> list[Sample]:
    """``fundusrt synth`` output: REFUGE's training layout, plus disc centres from phantoms.csv."""
    root = Path(root)
    samples = load_refuge(root, dataset="phantom")
    table = require(root / "phantoms.csv", "phantom")
    with open(table, newline="") as f:
        centres = {row["ImgName"]: (float(row["disc_x"]), float(row["disc_y"])) for row in csv.DictReader(f)}
    return [replace(s, disc_center=centres.get(s.name)) for s in samples]


def _training(root: Path, dataset: str) -> list[Sample]:
    annotations = require(root / "Annotation-Training400", dataset)
    fovea = _fovea_table(require(annotations / "Fovea_location.xlsx", dataset))
    samples = []
    for folder, label in (("Glaucoma", GLAUCOMA), ("Non-Glaucoma", NORMAL)):
        masks = require(annotations / "Disc_Cup_Masks" / folder, dataset)
        for image in sorted(require(root / "Training400" / folder, dataset).glob("*.jpg")):
            samples.append(_sample(image, dataset, "train", label, masks / f"{image.stem}.bmp", fovea))
    return samples


def _validation(root: Path, dataset: str) -> list[Sample]:
    gt = require(root / "REFUGE-Validation400-GT", dataset)
    table = read_table(require(gt / "Fovea_locations.xlsx", dataset), ("ImgName", "Glaucoma Label"))
    labels = {str(r["ImgName"]).strip(): int(r["Glaucoma Label"]) for r in table}
    fovea = _fovea_rows(table)
    masks = require(gt / "Disc_Cup_Masks", dataset)
    return [
        _sample(image, dataset, "validation", labels.get(image.name), masks / f"{image.stem}.bmp", fovea)
        for image in sorted((root / "REFUGE-Validation400").glob("*.jpg"))
    ]


def _test(root: Path, dataset: str) -> list[Sample]:
    gt = require(root / "REFUGE-Test-GT", dataset)
    label_column = "Label(Glaucoma=1)"
    table = read_table(require(gt / "Glaucoma_label_and_Fovea_location.xlsx", dataset), ("ImgName", label_column))
    labels = {str(r["ImgName"]).strip(): int(r[label_column]) for r in table}
    fovea = _fovea_rows(table)
    masks = require(gt / "Disc_Cup_Masks", dataset)
    samples = []
    for image in sorted((root / "Test400").glob("*.jpg")):
        label = labels.get(image.name)
        mask = masks / ("G" if label == GLAUCOMA else "N") / f"{image.stem}.bmp"
        samples.append(_sample(image, dataset, "test", label, mask, fovea))
    return samples


def _sample(image: Path, dataset: str, split: str, label, mask: Path, fovea: dict) -> Sample:
    return Sample(
        image=image,
        dataset=dataset,
        split=split,
        label=label,
        mask_files=(require(mask, dataset),),
        mask_coding="refuge",
        fovea=fovea.get(image.name),
    )


def _fovea_table(path: Path) -> dict:
    return _fovea_rows(read_table(path, ("ImgName", "Fovea_X", "Fovea_Y")))


def _fovea_rows(table: list[dict]) -> dict:
    return {
        str(r["ImgName"]).strip(): (float(r["Fovea_X"]), float(r["Fovea_Y"]))
        for r in table
        if r.get("Fovea_X") is not None and r.get("Fovea_Y") is not None
    }
