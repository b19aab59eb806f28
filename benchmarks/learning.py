"""Does it learn? Train the three stages on phantoms at reduced size on the CPU, then score the
best checkpoints on held-out phantoms (a series never seen in training or model selection).

    python benchmarks/learning.py [--out runs/learning] [--tasks locate,segment,classify]

Targets: OD Dice >= 0.85, OC Dice >= 0.70, fovea error <= 5 % of image width,
ensemble AUC >= 0.85. Prints one table and writes ``OUT/learning.json``. About 80 minutes on 2 cores
with the defaults; a finished stage is reused (its run folder's summary.json) unless --fresh.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from fundusrt.runtime.cli import main as fundusrt
from fundusrt.train.datasets import load_specs
from fundusrt.train.run_evaluation import evaluate_run
from fundusrt.train.tables import markdown_table

TARGETS = {  # (task, metric, comparison, threshold)
    "od_dice": ("segment", ">=", 0.85),
    "oc_dice": ("segment", ">=", 0.70),
    "fovea_error_of_width": ("locate", "<=", 0.05),
    "auc": ("classify", ">=", 0.85),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/learning"))
    p.add_argument("--tasks", default="locate,segment,classify")
    p.add_argument("--n-train", type=int, default=300, help="training phantoms (20 %% held out for model selection)")
    p.add_argument("--n-test", type=int, default=80, help="held-out test phantoms, another seed")
    p.add_argument("--seg-size", type=int, default=192)
    p.add_argument("--cls-size", type=int, default=128)
    p.add_argument("--loc-size", type=int, default=128)
    p.add_argument("--seg-epochs", type=int, default=12)
    p.add_argument("--cls-epochs", type=int, default=8)
    p.add_argument("--loc-epochs", type=int, default=25)
    p.add_argument("--loc-batch", type=int, default=16)
    p.add_argument("--seg-batch", type=int, default=8, help="8: more optimiser steps on few images")
    p.add_argument("--cls-batch", type=int, default=8)
    p.add_argument("--fresh", action="store_true", help="retrain stages that already finished")
    args = p.parse_args()

    data = {"train": args.out / "phantoms-train", "test": args.out / "phantoms-test"}
    for split, seed, n in (("train", 100, args.n_train), ("test", 200, args.n_test)):
        if not (data[split] / "phantoms.csv").exists():
            fundusrt(["synth", "--n", str(n), "--out", str(data[split]), "--seed", str(seed), "--jobs", "2"])
    test = load_specs(f"phantom:{data['test']}")

    recipes = {
        "locate": ["--size", str(args.loc_size), "--epochs", str(args.loc_epochs), "--batch-size", str(args.loc_batch),
                   "--unet-base", "16"],
        "segment": ["--size", str(args.seg_size), "--epochs", str(args.seg_epochs), "--batch-size", str(args.seg_batch),
                    "--bce", "1"],
        "classify": ["--size", str(args.cls_size), "--epochs", str(args.cls_epochs),
                     "--batch-size", str(args.cls_batch)],
    }  # fmt: skip
    report = {"settings": {k: str(v) for k, v in vars(args).items()}, "tasks": {}}
    for task in args.tasks.split(","):
        run = args.out / task
        command = ["train", task, "--data", f"phantom:{data['train']}", "--out", str(run), *recipes[task]]
        if args.fresh or not (run / "summary.json").exists():
            shutil.rmtree(run, ignore_errors=True)
            began = time.perf_counter()
            fundusrt(command)
            seconds = time.perf_counter() - began
        else:
            seconds = json.loads((run / "summary.json").read_text())["seconds"]
        scores = evaluate_run(run, test)
        report["tasks"][task] = {"command": "fundusrt " + " ".join(command), "train_seconds": round(seconds), **scores}

    print(f"\nheld-out phantoms: {len(test)} (seed 200); training phantoms: {args.n_train} (seed 100)")
    table = []
    for metric, (task, op, threshold) in TARGETS.items():
        if task not in report["tasks"]:
            continue
        result = report["tasks"][task]
        value = (result.get("ensemble") or next(iter(result["members"].values())))[metric]
        met = value >= threshold if op == ">=" else value <= threshold
        report.setdefault("targets", {})[metric] = {"value": value, "target": f"{op} {threshold}", "met": met}
        table.append([task, metric, f"{value:.4f}", f"{op} {threshold}", "yes" if met else "NO",
                      f"{result['train_seconds'] / 60:.1f} min"])  # fmt: skip
    print(markdown_table(["task", "metric", "held-out value", "target", "met", "training time"], table))
    for task, result in report["tasks"].items():
        for name, metrics in result["members"].items():
            print(f"  {task}/{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "score"))
    (args.out / "learning.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(t["met"] for t in report.get("targets", {}).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
