"""Preprocessed model inputs from dataset samples, exactly as training and the runtime make them
(for calibration and for parity checks)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from fundusrt.train.tasks import Task


def graph_batches(task: Task, samples, size: int, *, batch_size: int = 8) -> Iterator[dict]:
    """Batches of the task's graph inputs: ``{"inputs": {name: float32 array}, "rows": [dataset items
    without the image], "dataset": the first input's dataset}``."""
    loaders = {
        name: DataLoader(task.dataset(samples, view=view, size=size), batch_size)
        for name, view in task.graph_inputs.items()
    }
    dataset = next(iter(loaders.values())).dataset
    for batches in zip(*loaders.values()):
        first = batches[0]
        inputs = {name: batch["image"].numpy() for name, batch in zip(loaders, batches)}
        rows = [
            {key: _plain(value[i]) for key, value in first.items() if key != "image"}
            for i in range(len(first["image"]))
        ]
        yield {"inputs": inputs, "rows": rows, "dataset": dataset}


def _plain(value):
    if torch.is_tensor(value):
        return value.item() if value.ndim == 0 else value.numpy()
    return value


def calibration_inputs(
    task: Task, samples, size: int, *, count: int, batch_size: int = 8
) -> Iterator[dict[str, np.ndarray]]:
    """At most ``count`` preprocessed images, as input dicts for ONNX Runtime's calibrator."""
    seen = 0
    for batch in graph_batches(task, samples, size, batch_size=batch_size):
        if seen >= count:
            return
        yield batch["inputs"]
        seen += len(batch["rows"])
