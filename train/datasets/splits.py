"""Splits: leave-one-dataset-out (Zhao et al.'s validation protocol) and a stable hash hold-out."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from .sample import Sample


@dataclass(frozen=True)
class Fold:
    held_out: str
    train: list[Sample]
    validation: list[Sample]


def leave_one_dataset_out(samples: Sequence[Sample]) -> list[Fold]:
    """One fold per dataset, in order of first appearance; needs at least two datasets."""
    names = list(dict.fromkeys(s.dataset for s in samples))
    if len(names) < 2:
        raise ValueError(f"leave-one-dataset-out needs at least two datasets, got {names or 'none'}")
    return [
        Fold(
            held_out=name,
            train=[s for s in samples if s.dataset != name],
            validation=[s for s in samples if s.dataset == name],
        )
        for name in names
    ]


def hash_fraction(sample: Sample, salt: str = "") -> float:
    """A number in [0, 1) fixed by the image's file name alone: the same photograph falls on the same
    side of a hold-out whichever folder, table or machine it is read from. Another ``salt`` gives an
    independent draw (a second hold-out inside the first one's kept part)."""
    return int(hashlib.sha1(f"{salt}{sample.name}".encode()).hexdigest()[:8], 16) / 0x100000000


def hash_holdout(samples: Sequence[Sample], fraction: float, *, salt: str = "") -> tuple[list[Sample], list[Sample]]:
    """(kept, held out): about ``fraction`` of the samples held out, chosen by a hash of the file name."""
    held = [s for s in samples if hash_fraction(s, salt) < fraction]
    return [s for s in samples if hash_fraction(s, salt) >= fraction], held
