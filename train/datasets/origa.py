"""ORIGA (Zhang et al. 2010), as commonly redistributed.

    Images/001.jpg ... 650.jpg
    Masks/001.png                 0 background, 1 disc rim, 2 cup (REFUGE coding is also accepted)
    OrigaList.csv                 Eye, Filename, ExpCDR, Set, Glaucoma

Set A is the training split and Set B the test split (the split CE-Net used).
"""

from __future__ import annotations

import csv
from pathlib import Path

from .sample import Sample, require

SPLITS = {"A": "train", "B": "test"}


def load_origa(root: Path) -> list[Sample]:
    root = Path(root)
    images = require(root / "Images", "origa")
    masks = require(root / "Masks", "origa")
    with open(require(root / "OrigaList.csv", "origa"), newline="") as f:
        rows = list(csv.DictReader(f))
    samples = []
    for row in rows:
        name = row["Filename"].strip()
        stem = Path(name).stem
        samples.append(
            Sample(
                image=require(images / name, "origa"),
                dataset="origa",
                split=SPLITS.get(row.get("Set", "").strip().upper(), "all"),
                label=int(row["Glaucoma"]),
                mask_files=(require(masks / f"{stem}.png", "origa"),),
                mask_coding="labels",
            )
        )
    return samples
