"""What to screen: files, folders (recursively) and text files listing paths, in a stable order.

Each input also gets a ``name`` for the files written about it: its path inside the folder
given on the command line (with the folder's own name in front), or its file name; equal
names get ``-2``, ``-3``... so two images never share a mask. A path that does not exist is
still returned: the pipeline gives it its own failed record ("file not found"), so a typo is
reported with the rest, not lost in a crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2"}
LIST_SUFFIXES = {".txt", ".lst", ".list"}


@dataclass(frozen=True)
class Input:
    path: str
    name: str  # relative, for masks/overlays: "folder/sub/image.jpg" or "image.jpg"


def collect_inputs(arguments: list[str]) -> list[Input]:
    """The images the command line's INPUTs name, each once, folders sorted by path."""
    found: list[tuple[str, str]] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            images = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            top = path.resolve().name or "images"
            found.extend((str(p), (Path(top) / p.relative_to(path)).as_posix()) for p in sorted(images))
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            base = path.parent
            for line in path.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    listed = Path(line)
                    found.append((str(listed if listed.is_absolute() else base / listed), listed.name))
        else:
            found.append((str(path), path.name))
    seen, names, unique = set(), set(), []
    for path, name in found:
        key = identity(path)
        if key in seen:
            continue
        seen.add(key)
        stem, suffix, n = Path(name).with_suffix(""), Path(name).suffix, 1
        while name.lower() in names:
            n += 1
            name = f"{stem.as_posix()}-{n}{suffix}"
        names.add(name.lower())
        unique.append(Input(path, name))
    return unique


def identity(path: str) -> str:
    """The key that says two spellings name the same input (for de-duplication and --resume)."""
    return os.path.normpath(os.path.abspath(path))
