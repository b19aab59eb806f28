"""Which segmenter epoch validation keeps: scored on the deployed ellipses, or on thresholded masks
(what training validation scored before it shared the runtime's post-processing).

    python benchmarks/checkpoint_choice.py --train SPEC (--val SPEC | --holdout 0.2) --test SPEC \
        --epochs 40 --out choice.jsonl [--size 192 --batch 8 --limit N --schedule cosine|step]

Trains CE-Net as ``fundusrt train segment --bce 1`` does and, after every epoch, scores the validation
and test sets both ways (REFUGE's OD/OC Dice and vCDR MAE; score = mean Dice - vCDR MAE). Prints the
epoch each scoring keeps, for the whole run and for every shorter one, with the test score of the
deployed reading of each choice.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from fundusrt.runtime.geometry import Affine, warp_to_original
from fundusrt.runtime.masks import encode_refuge
from fundusrt.train.augment import Augment
from fundusrt.train.config import TrainConfig
from fundusrt.train.datasets import hash_holdout, load_specs
from fundusrt.train.loop import lr_factor, predict, resolve_precision, train_one_epoch
from fundusrt.train.metrics import segmentation_metrics
from fundusrt.train.models import create_model
from fundusrt.train.tasks import TASKS


def thresholded_masks(rows, dataset) -> dict:
    """The former validation: probabilities warped to original pixels, thresholded at 0.5."""
    masks, truths = [], []
    for r in rows:
        truth = dataset.samples[r["index"]].load_mask()
        planes = np.ascontiguousarray(np.asarray(r["output"], np.float32).transpose(1, 2, 0))
        back = warp_to_original(planes, Affine(r["affine"]), truth.shape)
        masks.append(encode_refuge(back[..., 0] > 0.5, back[..., 1] > 0.5))
        truths.append(truth)
    metrics = segmentation_metrics(masks, truths)
    return metrics | {"score": 0.5 * (metrics["od_dice"] + metrics["oc_dice"]) - metrics["vcdr_mae"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True)
    p.add_argument("--val")
    p.add_argument("--holdout", type=float, help="hold this share of --train out by file-name hash instead of --val")
    p.add_argument("--test", required=True)
    p.add_argument("--limit", type=int)
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--schedule", choices=["step", "cosine"], default="cosine")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    task = TASKS["segment"]
    member = task.members[0]
    samples = load_specs(args.train)
    train, val = hash_holdout(samples, args.holdout) if args.holdout else (samples, load_specs(args.val))
    train = train[: args.limit] if args.limit else train
    config = TrainConfig(
        task="segment", members=(member.name,), data=args.train, val=args.val, val_fraction=args.holdout or 0.0,
        limit=args.limit, size=args.size, epochs=args.epochs, batch_size=args.batch, lr=1e-3, lr_step=30,
        lr_decay=0.1, schedule=args.schedule, balance=False, weights=None, bce=1.0, unet_base=32, device="cpu",
        precision=resolve_precision("auto", "cpu"), minutes=None, workers=0, seed=0, resume=False, versions={},
    )  # fmt: skip
    torch.manual_seed(0)
    sets = {
        "val": task.dataset(val, view=member.view, size=args.size),
        "test": task.dataset(load_specs(args.test), view=member.view, size=args.size),
    }
    train_set = task.dataset(train, view=member.view, size=args.size, augment=Augment())
    print(f"{len(train_set)} training, {len(sets['val'])} validation, {len(sets['test'])} test photographs")
    model = create_model(member.model).to(memory_format=torch.channels_last)
    optimizer = torch.optim.RAdam(model.parameters(), lr=config.lr)
    loader = DataLoader(train_set, args.batch, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True)
    device, history = torch.device("cpu"), []
    with open(args.out, "w") as f:
        for epoch in range(args.epochs):
            began = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_factor(epoch, args.epochs, schedule=args.schedule, step=30, decay=0.1)
            train_set.epoch = epoch
            loss = train_one_epoch(model, loader, task, optimizer, device, config)
            record = {"epoch": epoch + 1, "loss": loss}
            for name, dataset in sets.items():
                rows = predict(model, DataLoader(dataset, args.batch), device, precision=config.precision)
                record[name] = {"ellipse": task.evaluate(rows, dataset), "mask": thresholded_masks(rows, dataset)}
            record["seconds"] = time.perf_counter() - began
            f.write(json.dumps(record) + "\n")
            f.flush()
            history.append(record)
            print(f"epoch {epoch + 1}: validation ellipse {record['val']['ellipse']['score']:.4f}, "
                  f"mask {record['val']['mask']['score']:.4f}", flush=True)  # fmt: skip
    report(history)
    return 0


def report(history: list[dict]) -> None:
    for scoring in ("mask", "ellipse"):
        kept = max(history, key=lambda r: r["val"][scoring]["score"])
        test = kept["test"]["ellipse"]
        print(f"kept by {scoring} scoring: epoch {kept['epoch']}; deployed on test: OD {test['od_dice']:.4f}, "
              f"OC {test['oc_dice']:.4f}, vCDR MAE {test['vcdr_mae']:.4f}, score {test['score']:.4f}")  # fmt: skip
    differ = []
    for k in range(1, len(history) + 1):
        a, b = (max(history[:k], key=lambda r, s=s: r["val"][s]["score"]) for s in ("mask", "ellipse"))
        if a["epoch"] != b["epoch"]:
            differ.append(f"{k} ({a['epoch']}: {a['test']['ellipse']['score']:.4f} / "
                          f"{b['epoch']}: {b['test']['ellipse']['score']:.4f})")  # fmt: skip
    print(f"runs cut after k epochs whose kept epoch differs (mask-kept / ellipse-kept, test score): "
          f"{', '.join(differ) or 'none'}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
