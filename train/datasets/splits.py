"""The seed's protocol (§4.1): each dataset in turn is held out for validation, the rest train."""

from __future__ import annotations

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
