"""Data specs: ``name:PATH[,name:PATH...]`` -> samples."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from .acrima import load_acrima
from .drishti import load_drishti
from .origa import load_origa
from .refuge import load_phantoms, load_refuge
from .rimone import load_rimone
from .sample import Sample
from .table import load_table

LOADERS: dict[str, Callable[[Path], list[Sample]]] = {
    "refuge": load_refuge,
    "origa": load_origa,
    "drishti": load_drishti,
    "rimone": load_rimone,
    "acrima": load_acrima,
    "phantom": load_phantoms,
    "csv": load_table,  # a user's own photographs, listed in a table
}


def parse_specs(text: str) -> list[tuple[str, Path]]:
    """``"refuge:/a,origa:/b"`` -> [("refuge", Path("/a")), ("origa", Path("/b"))].

    Commas split specs only where a known dataset name follows, so paths may hold commas.
    """
    names = "|".join(LOADERS)
    parts = re.split(rf",(?=(?:{names}):)", text.strip())
    specs = []
    for part in parts:
        name, sep, path = part.partition(":")
        if not sep or not path:
            raise ValueError(f"data spec {part!r} is not NAME:PATH (NAME one of {', '.join(LOADERS)})")
        if name not in LOADERS:
            raise ValueError(f"unknown dataset {name!r} in {part!r}: choose one of {', '.join(LOADERS)}")
        specs.append((name, Path(path).expanduser()))
    return specs


def load_spec(name: str, path: Path) -> list[Sample]:
    return LOADERS[name](Path(path))


def load_specs(text: str) -> list[Sample]:
    samples = []
    for name, path in parse_specs(text):
        samples += load_spec(name, path)
    return samples
