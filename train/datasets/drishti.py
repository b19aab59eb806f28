"""Drishti-GS1 (Sivaswamy et al. 2014/2015) in its published layout.

    Drishti-GS1_files/Training/Images/drishtiGS_002.png
    Drishti-GS1_files/Training/GT/drishtiGS_002/SoftMap/drishtiGS_002_{OD,cup}segSoftmap.png
    Drishti-GS1_files/Training/GT/drishtiGS_002/AvgBoundary/drishtiGS_002_diskCenter.txt   "row col"
    Drishti-GS1_files/Test/Images/..., Drishti-GS1_files/Test/Test_GT/<id>/...
    Drishti-GS1_diagnosis.xlsx    header row with "Drishti-GS File" and "Total" (Glaucomatous / Normal)

The soft maps average four experts (0-255). A pixel belongs to the disc or cup when at least
half of the experts drew it (> 127); ``> 254`` (all agree) and ``> 0`` (any) are the other
conventions in use. ``PATH`` may be the folder that holds ``Drishti-GS1_files`` or that folder.
"""

from __future__ import annotations

from pathlib import Path

from ..xlsx import read_table
from .sample import GLAUCOMA, NORMAL, DatasetLayoutError, Sample, require

SOFTMAP_THRESHOLD = 127
_DIAGNOSIS = "Drishti-GS1_diagnosis.xlsx"
_PARTS = (("Training", "GT", "train"), ("Test", "Test_GT", "test"))


def load_drishti(root: Path) -> list[Sample]:
    root = Path(root)
    files = _files_folder(root)
    labels = _labels(_find(_DIAGNOSIS, (root, files, files.parent)))
    samples = []
    for part, gt_folder, split in _PARTS:
        images = require(files / part / "Images", "drishti")
        gt = require(files / part / gt_folder, "drishti")
        for image in sorted(images.glob("*.png")):
            case = gt / image.stem
            soft = case / "SoftMap"
            centre_file = case / "AvgBoundary" / f"{image.stem}_diskCenter.txt"
            samples.append(
                Sample(
                    image=image,
                    dataset="drishti",
                    split=split,
                    label=labels.get(image.stem),
                    mask_files=(
                        require(soft / f"{image.stem}_ODsegSoftmap.png", "drishti"),
                        require(soft / f"{image.stem}_cupsegSoftmap.png", "drishti"),
                    ),
                    mask_coding="pair",
                    mask_threshold=SOFTMAP_THRESHOLD,
                    disc_center=_disc_center(centre_file) if centre_file.exists() else None,
                )
            )
    return samples


def _files_folder(root: Path) -> Path:
    # Some copies nest the folder twice (Drishti-GS1_files/Drishti-GS1_files/...).
    for candidate in (root, root / "Drishti-GS1_files", root / "Drishti-GS1_files" / "Drishti-GS1_files"):
        if (candidate / "Training" / "Images").is_dir():
            return candidate
    require(root, "drishti")
    raise DatasetLayoutError(f"drishti: missing {root / 'Drishti-GS1_files' / 'Training' / 'Images'}")


def _find(name: str, folders) -> Path:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    return require(folders[0] / name, "drishti")


def _labels(path: Path) -> dict[str, int]:
    labels = {}
    for row in read_table(path, ("Drishti-GS File", "Total")):
        # Names are written with a trailing quote mark, e.g. drishtiGS_002'.
        stem = Path(str(row["Drishti-GS File"]).strip().strip("'\u2019\"")).stem
        decision = str(row["Total"]).strip().lower()
        if decision.startswith("glaucoma"):
            labels[stem] = GLAUCOMA
        elif decision.startswith("normal"):
            labels[stem] = NORMAL
    return labels


def _disc_center(path: Path) -> tuple[float, float]:
    row, col = (float(v) for v in path.read_text().split()[:2])  # written as "row col"
    return (col, row)
