"""A training run's configuration: built from the command line, written to the run's config.json,
read back when the run is resumed, evaluated or exported."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class TrainConfig:
    task: str  # classify, segment or locate
    members: tuple[str, ...]  # the members trained, in the task's order
    data: str  # the data SPEC
    val: str | None  # a validation SPEC, else the data's splits or a hold-out of ``val_fraction``
    val_fraction: float
    limit: int | None  # at most this many training samples
    size: int  # input side in pixels
    epochs: int
    batch_size: int
    lr: float  # RAdam's base learning rate
    lr_step: int  # the step schedule decays every ``lr_step`` epochs ...
    lr_decay: float  # ... by this factor
    schedule: str  # step or cosine
    balance: bool  # draw both classes equally often (classification)
    weights: str | None  # encoders' starting weights (imagenet) or None
    bce: float  # the BCE term's weight beside soft Dice (segmentation)
    unet_base: int  # channels of the UNet's first level (location)
    device: str
    precision: str  # fp32 or bf16 forward passes
    minutes: float | None  # the whole run's time budget
    workers: int  # data-loading processes
    seed: int
    resume: bool
    versions: dict  # python and torch
    train_samples: int | None = None  # known once the data is split
    val_samples: int | None = None

    def with_samples(self, train: int, val: int) -> TrainConfig:
        return replace(self, train_samples=train, val_samples=val)

    def save(self, run: Path) -> Path:
        path = Path(run) / "config.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, run: Path) -> TrainConfig:
        path = Path(run) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{run}: not a training run (no config.json)")
        d = json.loads(path.read_text())
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{path}: unknown key {unknown[0]!r}")
        try:
            config = cls(**d)
        except TypeError as e:  # a key missing
            raise ValueError(f"{path}: {e}") from None
        return replace(config, members=tuple(config.members))
