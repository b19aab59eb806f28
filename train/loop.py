"""The plain training loop: one member at a time, epoch by epoch, best checkpoint kept.

train_one_epoch -> predict on the validation set -> task metrics -> checkpoints, history
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .augment import Augment
from .models import create_model, load_checkpoint, save_checkpoint
from .tasks import Member, Task


def train_one_epoch(model, loader, task: Task, optimizer, device, *, bce_weight=0.0, desc="train") -> float:
    model.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, unit="batch", dynamic_ncols=True)
    for batch in bar:
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(model(batch["image"]), batch, bce_weight=bce_weight)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch["image"])
        count += len(batch["image"])
        bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1)


@torch.no_grad()
def predict(model, loader, device, *, keep_input: bool = False) -> list[dict]:
    """One dict per example: ``output`` (the activated prediction, numpy), ``index``, ``affine``."""
    model.eval()
    rows = []
    for batch in loader:
        outputs = model.predict(batch["image"].to(device)).float().cpu().numpy()
        for i, output in enumerate(outputs):
            row = {"output": output, "index": int(batch["index"][i])}
            if "affine" in batch:
                row["affine"] = batch["affine"][i].numpy()
            if keep_input:
                row["input"] = batch["image"][i].numpy()
            rows.append(row)
    return rows


def fit_member(task: Task, member: Member, train_samples, val_samples, config: dict, out: Path) -> dict:
    """Train one member into ``out/<member>/``; return its best validation metrics."""
    folder = Path(out) / member.name
    folder.mkdir(parents=True, exist_ok=True)
    device = torch.device(config["device"])
    torch.manual_seed(config["seed"])
    kwargs = _model_kwargs(member, config)
    model = create_model(member.model, **kwargs).to(device)
    optimizer = torch.optim.RAdam(model.parameters(), lr=config["lr"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config["lr_step"], gamma=config["lr_decay"])
    preprocess = task.preprocess(member, config["size"])

    start, best, best_metrics = 0, -math.inf, {}
    last_path, best_path = folder / "last.pt", folder / "best.pt"
    if config["resume"] and last_path.exists():
        state = load_checkpoint(last_path, map_location=device)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best, best_metrics = state["epoch"], state["best_score"], state["best_metrics"]
        print(f"{member.name}: resuming after epoch {start}")

    train_set = task.dataset(train_samples, member, size=config["size"], augment=Augment(), seed=config["seed"])
    val_set = task.dataset(val_samples, member, size=config["size"], seed=config["seed"])
    if len(train_set) == 0:
        raise ValueError(f"{member.name}: no training samples with what {task.name} needs")
    loading = dict(num_workers=config["workers"], pin_memory=device.type == "cuda")
    train_loader = DataLoader(
        train_set, config["batch_size"], shuffle=True, drop_last=len(train_set) > config["batch_size"],
        generator=torch.Generator().manual_seed(config["seed"]), **loading,
    )  # fmt: skip
    val_loader = DataLoader(val_set, config["batch_size"], **loading)

    for epoch in range(start, config["epochs"]):
        began = time.perf_counter()
        train_set.epoch = epoch
        loss = train_one_epoch(
            model, train_loader, task, optimizer, device, bce_weight=config["bce"],
            desc=f"{member.name} {epoch + 1}/{config['epochs']}",
        )  # fmt: skip
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        if len(val_set):
            metrics = task.evaluate(predict(model, val_loader, device, keep_input=task.name == "locate"), val_set)
        else:
            metrics = {"score": -loss}
        record = {
            "epoch": epoch + 1,
            "loss": loss,
            "lr": lr,
            "seconds": round(time.perf_counter() - began, 1),
            **metrics,
        }
        with open(folder / "history.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        improved = metrics["score"] > best
        if improved:
            best, best_metrics = metrics["score"], metrics
            save_checkpoint(best_path, model, preprocess=preprocess, task=task.name, member=member.name,
                            epoch=epoch + 1, metrics=metrics)  # fmt: skip
        save_checkpoint(
            last_path, model, preprocess=preprocess, task=task.name, member=member.name, epoch=epoch + 1,
            metrics=metrics, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
            best_score=best, best_metrics=best_metrics,
        )  # fmt: skip
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "score")
        print(f"{member.name} epoch {epoch + 1}/{config['epochs']}: loss {loss:.4f}; {shown}{' *' if improved else ''}")
    return best_metrics


def _model_kwargs(member: Member, config: dict) -> dict:
    if member.model == "unet_locator":
        return {"base": config["unet_base"]}
    return {"weights": config["weights"]} if config["weights"] else {}
