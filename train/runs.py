"""Reading a finished run folder: its configuration and each member's best model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .config import TrainConfig
from .models import load_model
from .tasks import TASKS, Member


@dataclass
class TrainedMember:
    member: Member
    model: nn.Module  # in eval mode
    preprocess: dict  # what the checkpoint says its inputs were (``Preprocess`` as a dict)
    checkpoint: Path


def load_run(run: Path, task: str | None = None, *, map_location="cpu") -> tuple[TrainConfig, list[TrainedMember]]:
    """(config, members in the task's order) of ``run``; ``task`` asserts what kind of run it is."""
    run = Path(run)
    config = TrainConfig.load(run)
    if task is not None and config.task != task:
        raise ValueError(f"{run}: a {config.task} run, expected a {task} run")
    members = []
    for member in TASKS[config.task].members:
        if member.name in config.members:
            checkpoint = run / member.name / "best.pt"
            model, payload = load_model(checkpoint, map_location=map_location)
            members.append(TrainedMember(member, model, payload["preprocess"], checkpoint))
    if not members:
        raise ValueError(f"{run}: no trained members")
    return config, members
