"""Scoring a finished training run folder on any samples with its members' best checkpoints, in
PyTorch (``bundle_evaluation`` scores an exported bundle through the runtime)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from fundusrt.runtime.normalize import Normalization

from .loop import predict
from .runs import load_run
from .tasks import TASKS


def evaluate_run(run: Path, samples, *, device: str = "cpu", batch_size: int = 16) -> dict:
    """``{"members": {name: metrics}, "ensemble": metrics}`` (ensemble for a task whose members merge):
    the ensemble is the mean of the members' probabilities, as it is deployed. A member that cannot see
    the samples (the full view of disc crops, ``Sample.disc_crop``) is left out and the ensemble is the
    mean of the others (its ``members`` says which)."""
    config, members = load_run(run, map_location=device)
    task = TASKS[config.task]
    results, probabilities, dataset = {}, {}, None
    for trained in members:
        as_trained = replace(task, normalization=Normalization.from_dict(trained.preprocess["normalization"]))
        seen = as_trained.dataset(samples, view=trained.member.view, size=trained.preprocess["size"])
        if not len(seen):
            continue
        dataset = seen
        model = trained.model.to(device)
        rows = predict(model, DataLoader(dataset, batch_size), device, keep_input=task.keeps_view)
        results[trained.member.name] = task.evaluate(rows, dataset)
        if task.ensemble:
            probabilities[trained.member.name] = [float(r["output"]) for r in rows]
    summary = {"members": results}
    if task.ensemble and len(probabilities) > 1:
        mean = np.mean(list(probabilities.values()), axis=0)
        metrics = task.evaluate([{"output": p, "index": i} for i, p in enumerate(mean)], dataset)
        summary["ensemble"] = {**metrics, "members": list(probabilities)}
    return summary
