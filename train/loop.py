"""The plain training loop: one member at a time, epoch by epoch, best checkpoint kept.

train_one_epoch -> predict on the validation set -> task metrics -> checkpoints, history
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from .augment import Augment
from .config import TrainConfig
from .models import create_model, load_checkpoint, save_checkpoint
from .tasks import Member, Task


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies BF16 natively (AMX or AVX-512 BF16): there autocast to BF16 roughly
    halves a training step; elsewhere it emulates BF16 and is slower than FP32."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> ``bf16`` on a CPU with native BF16, else ``fp32``."""
    if precision == "auto":
        return "bf16" if device == "cpu" and cpu_has_bf16() else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    """Mixed precision for forward passes: weights, gradients and the optimizer stay FP32."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def lr_factor(epoch: int, total: int, *, schedule: str, step: int, decay: float) -> float:
    """The learning rate of 0-based ``epoch`` relative to the base rate: ``step`` decays by ``decay``
    every ``step`` epochs (Zhao et al.'s recipe); ``cosine`` falls from 1 towards 0 over ``total`` epochs."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / max(total, 1)))
    return decay ** (epoch // step)


def train_one_epoch(model, loader, task: Task, optimizer, device, config: TrainConfig, *, desc="train") -> float:
    model.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, unit="batch", dynamic_ncols=True)
    for batch in bar:
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, config.precision):
            output = model(_layout(batch["image"], device))
        loss = task.loss(output.float(), batch, config)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch["image"])
        count += len(batch["image"])
        bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1)


def _layout(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Channels-last on the CPU, where oneDNN's convolutions run faster that way (the model is moved to
    match in ``fit_member``); the values are the same either way."""
    return images.contiguous(memory_format=torch.channels_last) if torch.device(device).type == "cpu" else images


@torch.no_grad()
def predict(model, loader, device, *, keep_input: bool = False, precision: str = "fp32") -> list[dict]:
    """One dict per example: ``output`` (the activated prediction, numpy), ``index``, ``affine``, and with
    ``keep_input`` the RGB ``view`` the prediction was made from (where the dataset gives one)."""
    model.eval()
    rows = []
    for batch in loader:
        with autocast(device, precision):
            outputs = model.predict(_layout(batch["image"].to(device), device))
        outputs = outputs.float().cpu().numpy()
        for i, output in enumerate(outputs):
            row = {"output": output, "index": int(batch["index"][i])}
            if "affine" in batch:
                row["affine"] = batch["affine"][i].numpy()
            if keep_input and "view" in batch:
                row["view"] = batch["view"][i].numpy()
            rows.append(row)
    return rows


def fit_member(
    task: Task,
    member: Member,
    train_samples,
    val_samples,
    config: TrainConfig,
    out: Path,
    *,
    deadline: float | None = None,
) -> dict:
    """Train one member into ``out/<member>/``; return its best validation metrics. ``deadline``
    (``time.monotonic()`` seconds) shortens the run to the epochs that fit, annealing the schedule over them."""
    folder = Path(out) / member.name
    folder.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    model = create_model(member.model, **task.model_kwargs(config)).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.RAdam(model.parameters(), lr=config.lr)
    preprocess = asdict(task.preprocess(config.size))
    schedule = dict(schedule=config.schedule, step=config.lr_step, decay=config.lr_decay)

    start, best, best_metrics, total = 0, -math.inf, {}, config.epochs
    last_path, best_path = folder / "last.pt", folder / "best.pt"
    if config.resume and last_path.exists():
        state = load_checkpoint(last_path, map_location=device)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        start, best, best_metrics = state["epoch"], state["best_score"], state["best_metrics"]
        print(f"{member.name}: resuming after epoch {start}")

    view = dict(view=member.view, size=config.size, seed=config.seed)
    train_set = task.dataset(train_samples, **view, augment=Augment())
    val_set = task.dataset(val_samples, **view)
    if len(train_set) == 0:
        raise ValueError(f"{member.name}: no training samples with what {task.name} needs")
    loading = dict(num_workers=config.workers, pin_memory=device.type == "cuda")
    generator = torch.Generator().manual_seed(config.seed)
    order = {"shuffle": True, "generator": generator}
    if config.balance:
        order = {"sampler": _balanced_sampler(train_set, generator)}
    train_loader = DataLoader(
        train_set, config.batch_size, drop_last=len(train_set) > config.batch_size, **order, **loading
    )
    val_loader = DataLoader(val_set, config.batch_size, **loading)

    epoch, spent = start, []
    while epoch < total:
        began = time.perf_counter()
        train_set.epoch = epoch
        lr = config.lr * lr_factor(epoch, total, **schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = train_one_epoch(
            model, train_loader, task, optimizer, device, config, desc=f"{member.name} {epoch + 1}/{total}"
        )
        if len(val_set):
            rows = predict(model, val_loader, device, keep_input=task.keeps_view, precision=config.precision)
            metrics = task.evaluate(rows, val_set)
        else:
            metrics = {}
        epoch += 1
        spent.append(time.perf_counter() - began)
        record = {"epoch": epoch, "loss": loss, "lr": lr, "seconds": round(spent[-1], 1), **metrics}
        with open(folder / "history.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        # Without validation the last epoch is the one kept: the schedule has annealed by then.
        improved = "score" not in metrics or metrics["score"] > best
        if improved:
            best, best_metrics = metrics.get("score", -loss), metrics or {"loss": loss}
        if deadline is not None and epoch < total:
            # The latest epochs say best what the next ones cost (the first also fills the image cache).
            fits = epoch + int((deadline - time.monotonic()) // float(np.median(spent[-3:])))
            if fits < total:
                total = max(fits, epoch)
                print(f"{member.name}: the time budget fits {total} of {config.epochs} epochs; "
                      "the schedule anneals over those")  # fmt: skip
        checkpoint = dict(preprocess=preprocess, task=task.name, member=member.name, epoch=epoch, metrics=metrics)
        if improved:
            save_checkpoint(best_path, model, **checkpoint)
        save_checkpoint(
            last_path, model, **checkpoint, optimizer=optimizer.state_dict(), best_score=best,
            best_metrics=best_metrics,
        )  # fmt: skip
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "score")
        print(f"{member.name} epoch {epoch}/{total}: loss {loss:.4f}{'; ' + shown if shown else ''}"
              f"{' *' if improved and metrics else ''}")  # fmt: skip
    return best_metrics


def _balanced_sampler(dataset, generator) -> WeightedRandomSampler:
    """Each epoch draws as many examples as the dataset holds, glaucoma and normal equally often (32
    glaucomatous photographs among 314 would otherwise be seen one batch in ten), and each source equally
    often where there are several (REFUGE's 320 against ACRIMA's 564: a member should not learn the larger
    camera's look as its prior)."""
    return WeightedRandomSampler(
        balanced_weights(dataset.samples), num_samples=len(dataset.samples), replacement=True, generator=generator
    )


def balanced_weights(samples) -> list[float]:
    """A drawing weight per sample that gives every (source, label) group the same share."""
    groups = [(s.dataset, s.label) for s in samples]
    counts = {group: groups.count(group) for group in set(groups)}
    return [1.0 / counts[group] for group in groups]
