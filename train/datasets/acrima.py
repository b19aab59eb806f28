"""ACRIMA (Diaz-Pinto et al. 2019): disc-centred crops, the label in the file name.

    Im001_ACRIMA.jpg (normal), Im310_g_ACRIMA.jpg (glaucoma)

found in ``PATH``, ``PATH/Images`` or ``PATH/Database/Images``. No masks, no landmarks.
"""

from __future__ import annotations

from pathlib import Path

from .sample import GLAUCOMA, NORMAL, DatasetLayoutError, Sample, require

_PATTERN = "Im*_ACRIMA.*"


def load_acrima(root: Path) -> list[Sample]:
    root = Path(root)
    require(root, "acrima")
    for folder in (root, root / "Images", root / "Database" / "Images"):
        images = sorted(p for p in folder.glob(_PATTERN) if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
        if images:
            return [
                Sample(image=p, dataset="acrima", split="all", label=GLAUCOMA if "_g_" in p.name else NORMAL)
                for p in images
            ]
    raise DatasetLayoutError(f"acrima: missing {root / 'Images'} (no {_PATTERN} files under {root})")
