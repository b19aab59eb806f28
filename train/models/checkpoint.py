"""Checkpoints: the builder's name and arguments as a plain dict, the weights, the preprocessing.

Everything in a checkpoint is a tensor or a plain Python value, so it loads with
``torch.load(weights_only=True)``: no pickled classes, nothing executed on load.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .registry import create_model

FORMAT = "fundusrt-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, model: nn.Module, *, preprocess: dict, **extra) -> None:
    """``extra``: plain values (task, member, epoch, metrics, optimizer / scheduler state ...)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": dict(model.builder),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "preprocess": preprocess,
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # a kill mid-save never leaves half a checkpoint


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fundusrt checkpoint")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {payload.get('version')} (this fundusrt reads {VERSION})")
    return payload


def load_model(path: Path, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model from its checkpoint: (model in eval mode, checkpoint dict)."""
    payload = load_checkpoint(path, map_location)
    model = create_model(payload["model"]["name"], **payload["model"]["kwargs"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload
