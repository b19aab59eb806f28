"""Evaluating a finished run folder on any samples, with its members' best checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from .loop import predict
from .models import load_model
from .tasks import TASKS


def evaluate_run(run: Path, samples, *, device: str = "cpu", batch_size: int = 16) -> dict:
    """``{"members": {name: metrics}, "ensemble": metrics}`` (ensemble only for classify runs):
    the ensemble is the mean of the members' probabilities, as it is deployed."""
    run = Path(run)
    config = json.loads((run / "config.json").read_text())
    task = TASKS[config["task"]]
    members = [m for m in task.members if m.name in config["members"]]
    results, probabilities, dataset = {}, [], None
    for member in members:
        model, checkpoint = load_model(run / member.name / "best.pt", map_location=device)
        dataset = task.dataset(samples, member, size=checkpoint["preprocess"]["size"])
        rows = predict(model.to(device), DataLoader(dataset, batch_size), device, keep_input=task.name == "locate")
        results[member.name] = task.evaluate(rows, dataset)
        if task.name == "classify":
            probabilities.append([float(r["output"]) for r in rows])
    summary = {"members": results}
    if task.name == "classify" and len(members) > 1:
        mean = np.mean(probabilities, axis=0)
        summary["ensemble"] = task.evaluate([{"output": p, "index": i} for i, p in enumerate(mean)], dataset)
    return summary
