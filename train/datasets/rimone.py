"""RIM-ONE r3 (Medina-Mesa et al. 2016) in its published layout.

    Healthy/Stereo Images/N-1-L.jpg
    Glaucoma and suspects/Stereo Images/G-1-L.jpg, S-1-L.jpg
    <class>/Expert1_masks/<stem>-1-Disc-exp1.png, <stem>-1-Cup-exp1.png

Images are stereo pairs 2144 x 1424; the left half is kept for image and masks, whose
annotations lie there. Suspects (S-) are unlabelled for classification but keep their masks.
"""

from __future__ import annotations

from pathlib import Path

from .sample import GLAUCOMA, NORMAL, Sample, require

_FOLDERS = ("Healthy", "Glaucoma and suspects")
_LABELS = {"N": NORMAL, "G": GLAUCOMA, "S": None}


def load_rimone(root: Path, *, expert: int = 1) -> list[Sample]:
    root = Path(root)
    samples = []
    for folder in _FOLDERS:
        images = require(root / folder / "Stereo Images", "rimone")
        masks = require(root / folder / f"Expert{expert}_masks", "rimone")
        for image in sorted(images.glob("*.jpg")):
            kind = image.stem.split("-")[0].upper()
            samples.append(
                Sample(
                    image=image,
                    dataset="rimone",
                    split="all",
                    label=_LABELS.get(kind),
                    mask_files=tuple(
                        require(masks / f"{image.stem}-1-{part}-exp{expert}.png", "rimone") for part in ("Disc", "Cup")
                    ),
                    mask_coding="pair",
                    mask_threshold=0,
                    crop=_left_half(image),
                )
            )
    return samples


def _left_half(image: Path) -> tuple[int, int, int, int]:
    # The header alone gives the size; decoding 159 stereo JPEGs to list them would be slow.
    from PIL import Image

    with Image.open(image) as header:
        w, h = header.size
    return (0, 0, w // 2, h)
