"""The training side's commands: ``fundusrt synth``, ``fundusrt train classify|segment|locate`` (Zhao
et al.'s recipe from the command line), ``fundusrt evaluate`` and ``fundusrt calibrate``.

Training defaults follow their settings: 512² inputs, disc crops of twice the disc diameter, RAdam
at 1e-3 decayed x0.1 every 30 epochs, batch 16, 200 epochs. Registering a command imports nothing
beyond the standard library: torch, OpenCV and scikit-learn are imported only when a command runs,
so ``fundusrt --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

NORMALIZATIONS = ("imagenet", "image", "field-channels")  # train --normalization (runtime.normalize)
_TASK_HELP = {
    "classify": "the five-member ResNet50 ensemble (full image and disc crop)",
    "segment": "CE-Net on disc crops: optic disc and cup",
    "locate": "the UNet regressing the bi-distance map: optic disc centre and fovea",
}


def register_synth(subparsers) -> None:
    p = subparsers.add_parser(
        "synth",
        help="write phantom fundus photographs with exact ground truth (REFUGE layout)",
        description="Write a folder of phantoms in REFUGE's Training400 layout (images, masks, fovea table) "
        "with every truth in OUT/phantoms.csv; refuge:OUT reads it as REFUGE training data, phantom:OUT also "
        "reads the disc centres.",
    )
    p.add_argument("--n", type=int, required=True, help="number of phantoms")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="series seed: same seed, same bytes (default 0)")
    p.add_argument("--width", type=int, default=None, help="fix the frame width (default: 800-2200 px)")
    p.add_argument("--jobs", type=int, default=1, help=f"worker processes (this machine has {os.cpu_count()} cores)")
    p.add_argument("--preview", type=Path, help="also write phantom 0 beside its ground truth to this PNG")
    p.set_defaults(func=_synth)


def register_evaluate(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="REFUGE metrics of a bundle through the screening pipeline")
    p.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE")
    p.add_argument("--data", required=True, help="dataset SPEC with ground truth, e.g. refuge:/data/REFUGE")
    p.add_argument("--split", default=None, help="only samples of this split (train/validation/test/all)")
    p.add_argument(
        "--lodo", action="store_true",
        help="leave-one-dataset-out: each BUNDLE folder is named after the dataset it held out, "
        "and is scored on that dataset's samples only",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="folder for evaluation.json and evaluation.md")
    p.add_argument(
        "--backend", default="auto",
        help="one or more, comma-separated (onnxruntime,openvino); with several backends or precisions, each "
        "column after the first also says how far its answers are from the first's",
    )  # fmt: skip
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", help="one or more, comma-separated (fp32,bf16,fp16,int8)")
    p.add_argument("--batch", type=int, default=8)
    p.set_defaults(func=_evaluate)


def register_calibrate(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="refit a bundle's vCDR weight and thresholds on a site's labelled photographs (a new bundle)",
        description="Screen a site's labelled photographs with BUNDLE and write a copy of it (without engines/) "
        "whose ensemble numbers are refitted on them: the vCDR weight (best AUC on a grid), the decision "
        "threshold (at --specificity) and the uncertainty threshold (--uncertain-share); its manifest records "
        "the calibration, with the sample's AUC, sensitivity and specificity before and after.",
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE")
    p.add_argument("--data", required=True, help="the site's labelled photographs, a dataset SPEC, e.g. csv:site.csv")
    p.add_argument("--out", type=Path, required=True, help="the new bundle folder (must not exist)")
    p.add_argument("--split", default=None, help="only samples of this split (train/validation/test/all)")
    # the defaults are site_calibration's (not imported here: registering imports nothing heavy)
    p.add_argument(
        "--specificity", type=float, default=0.85,
        help="the share of the sample's normal photographs below the decision threshold (0.85: REFUGE's "
        "operating point)",
    )  # fmt: skip
    p.add_argument(
        "--uncertain-share", type=float, default=0.10,
        help="the share of the sample the uncertainty threshold flags (0.10); 0 keeps the bundle's threshold",
    )  # fmt: skip
    p.add_argument(
        "--quality", action="store_true",
        help="also report the sample's ungradable photographs (quality limits are not in the bundle: nothing refitted)",
    )  # fmt: skip
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", help="the precision the site screens at (fp32)")
    p.add_argument("--batch", type=int, default=8)
    p.set_defaults(func=_calibrate)


def _calibrate(args) -> int:
    from .bundle_calibration import run_command

    return run_command(args)


def _synth(args) -> int:
    from .synth import run_command

    return run_command(args)


def _evaluate(args) -> int:
    from .bundle_evaluation import run_command

    return run_command(args)


def register_train(subparsers) -> None:
    p = subparsers.add_parser("train", help="train the classifier ensemble, the segmenter or the locator")
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, text in _TASK_HELP.items():
        t = tasks.add_parser(name, help=text, description=f"Train {text}.")
        _add_arguments(t, name)
        t.set_defaults(func=run)


def _add_arguments(p: argparse.ArgumentParser, task: str) -> None:
    data = p.add_argument_group("data")
    data.add_argument("--data", required=True, help="SPEC[,SPEC...], e.g. refuge:/data/REFUGE,origa:/data/ORIGA")
    data.add_argument("--val", help="validation SPEC; default: the data's validation/test splits, else --val-fraction")
    data.add_argument("--val-fraction", type=float, default=0.2, help="held out when the data has no split (0.2)")
    data.add_argument("--limit", type=int, help="use at most this many training samples (quick runs)")
    data.add_argument("--lodo", action="store_true", help="leave-one-dataset-out: one run per held-out dataset")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    recipe = p.add_argument_group("recipe (Zhao et al.'s defaults)")
    recipe.add_argument("--size", type=int, default=512, help="input side in pixels (512)")
    recipe.add_argument("--epochs", type=int, default=200)
    recipe.add_argument("--batch-size", type=int, default=16)
    recipe.add_argument(
        "--normalization", choices=NORMALIZATIONS,
        help="input normalisation: fixed ImageNet constants, a per-image z-score, or each channel's z-score "
        "over the field of view (colour and contrast normalisation); default: the task's own",
    )  # fmt: skip
    recipe.add_argument("--lr", type=float, default=1e-3, help="RAdam learning rate (1e-3)")
    recipe.add_argument("--lr-step", type=int, default=30, help="decay the learning rate every N epochs (30)")
    recipe.add_argument("--lr-decay", type=float, default=0.1)
    recipe.add_argument(
        "--schedule", choices=["step", "cosine"], default="step",
        help="step: x--lr-decay every --lr-step epochs (Zhao et al.'s); cosine: anneal over the run",
    )  # fmt: skip
    recipe.add_argument("--weights", choices=["imagenet"], help="start encoders from ImageNet (needs the internet)")
    _TASK_OPTIONS[task](recipe)
    run_group = p.add_argument_group("run")
    run_group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run_group.add_argument(
        "--precision", choices=["auto", "fp32", "bf16"], default="auto",
        help="forward-pass precision; auto: bf16 on a CPU with native BF16 (AMX, AVX-512 BF16), else fp32",
    )  # fmt: skip
    run_group.add_argument(
        "--minutes", type=float, help="time budget of the whole run: fewer epochs if needed, schedule kept"
    )
    run_group.add_argument("--workers", type=int, help="data-loading processes (0 on CPU, 8 on CUDA)")
    run_group.add_argument("--seed", type=int, default=0)
    run_group.add_argument("--resume", action="store_true", help="continue from each member's last.pt")


def _classify_options(recipe) -> None:
    recipe.add_argument("--member", action="append", help="train only this member (repeatable)")
    recipe.add_argument("--balance", action="store_true", help="draw glaucoma and normal equally often")


def _segment_options(recipe) -> None:
    recipe.add_argument("--bce", type=float, default=0.0, help="add this weight x BCE to the soft Dice loss (0)")


def _locate_options(recipe) -> None:
    recipe.add_argument("--unet-base", type=int, default=32, help="channels of the UNet's first level (32)")


_TASK_OPTIONS = {"classify": _classify_options, "segment": _segment_options, "locate": _locate_options}


def _config(args, members):
    """The run's ``TrainConfig`` from the command line (options a task lacks take their neutral value)."""
    import torch

    from .config import TrainConfig
    from .loop import resolve_precision

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return TrainConfig(
        task=args.task,
        members=tuple(m.name for m in members),
        data=args.data,
        val=args.val,
        val_fraction=args.val_fraction,
        limit=args.limit,
        size=args.size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_step=args.lr_step,
        lr_decay=args.lr_decay,
        schedule=args.schedule,
        balance=getattr(args, "balance", False),
        weights=args.weights,
        bce=getattr(args, "bce", 0.0),
        unet_base=getattr(args, "unet_base", 32),
        device=device,
        precision=resolve_precision(args.precision, device),
        minutes=args.minutes,
        workers=args.workers if args.workers is not None else (8 if device.startswith("cuda") else 0),
        seed=args.seed,
        resume=args.resume,
        versions={"python": platform.python_version(), "torch": torch.__version__},
    )


def run(args) -> int:
    from .datasets import leave_one_dataset_out, load_specs
    from .tasks import TASKS

    task = TASKS[args.task]
    if args.normalization:
        from dataclasses import replace

        from fundusrt.runtime.normalize import Normalization

        chosen = {"imagenet": Normalization(), "image": Normalization(per_image=True),
                  "field-channels": Normalization(per_image=True, per_channel=True)}[args.normalization]  # fmt: skip
        task = replace(task, normalization=chosen)
    members = task.members
    if getattr(args, "member", None):
        known = {m.name: m for m in members}
        unknown = [n for n in args.member if n not in known]
        if unknown:
            sys.exit(f"fundusrt train: unknown member {unknown[0]!r}; members: {', '.join(known)}")
        members = tuple(known[n] for n in args.member)
    config = _config(args, members)
    samples = _vetted(load_specs(args.data))
    if args.lodo:
        rows = []
        for fold in leave_one_dataset_out(samples):
            out = args.out / f"lodo-{fold.held_out}"
            metrics = _train(task, members, fold.train, fold.validation, config, out)
            rows.append((fold.held_out, len(fold.train), len(fold.validation), metrics))
        _print_lodo(rows)
    else:
        train, val = _split(samples, args)
        _train(task, members, train, val, config, args.out)
    return 0


def _vetted(samples):
    """Unreadable images are reported, one line each, and left out; training goes on with the rest."""
    from .datasets import vet_samples

    usable, problems = vet_samples(samples)
    for line in problems:
        print(f"skipping {line}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} of {len(samples)} samples skipped", file=sys.stderr)
    if not usable:
        sys.exit("fundusrt train: no usable samples")
    return usable


def _split(samples, args):
    """(train, validation): ``--val``, else the data's own validation/test splits, else a hash hold-out."""
    from .datasets import hash_holdout, load_specs

    if args.val:
        return samples, _vetted(load_specs(args.val))
    held = [s for s in samples if s.split in ("validation", "test")]
    train = [s for s in samples if s.split not in ("validation", "test")]
    if held and train:
        return train, held
    kept, holdout = hash_holdout(samples, args.val_fraction)
    what = "only validation/test splits" if held else "no validation split"
    if holdout:
        print(f"the data has {what}: {len(holdout)} of {len(samples)} samples held out for validation "
              f"by a hash of the file name (--val-fraction {args.val_fraction})")  # fmt: skip
    else:
        print(f"the data has {what}: training on all {len(samples)} samples without validation "
              "(--val-fraction 0); the last epoch is kept")  # fmt: skip
    return kept, holdout


def _train(task, members, train, val, config, out: Path) -> dict:
    from .loop import fit_member

    if config.limit:
        train = train[: config.limit]
    out.mkdir(parents=True, exist_ok=True)
    config = config.with_samples(len(train), len(val))
    config.save(out)
    print(f"{task.name}: {len(train)} training and {len(val)} validation samples -> {out}")
    began = time.perf_counter()
    finish = time.monotonic() + 60 * config.minutes if config.minutes else None
    results = {}
    for i, member in enumerate(members):  # each member gets an equal share of the time left
        deadline = None if finish is None else time.monotonic() + (finish - time.monotonic()) / (len(members) - i)
        results[member.name] = fit_member(task, member, train, val, config, out, deadline=deadline)
    summary = {"members": results, "seconds": round(time.perf_counter() - began, 1)}
    if task.ensemble:  # the classifier's bundle graph carries the vCDR's model beside the ensemble
        _fit_vcdr_risk(train, out, summary)
    if task.ensemble and len(members) > 1 and val:
        from .run_evaluation import evaluate_run

        summary["ensemble"] = evaluate_run(out, val, device=config.device, batch_size=config.batch_size)["ensemble"]
        print("ensemble: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["ensemble"].items() if k != "members"))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary.get("ensemble") or next(iter(results.values()), {})


def _fit_vcdr_risk(train, out: Path, summary: dict) -> None:
    """The vCDR's logistic model of glaucoma beside the ensemble (``vcdr_risk.json``), where the
    training photographs have annotations and labels; export puts it in the bundle."""
    from .vcdr_risk import fit_vcdr_risk

    fitted = fit_vcdr_risk(train)
    if fitted is None:
        print("vCDR model: not fitted (needs annotated photographs of both classes)")
        return
    risk, used = fitted
    (out / "vcdr_risk.json").write_text(json.dumps({**risk.to_dict(), "photographs": used}, indent=2) + "\n")
    summary["vcdr_risk"] = risk.to_dict()
    print(f"vCDR model on {used} annotated photographs: P(glaucoma) = sigmoid({risk.intercept:.2f} "
          f"+ {risk.slope:.2f} x vCDR), 0.5 at vCDR {-risk.intercept / risk.slope:.3f}")  # fmt: skip


def _print_lodo(rows) -> None:
    from .tables import markdown_table

    keys = [k for k, v in rows[0][3].items() if k != "score" and isinstance(v, float)] if rows else []
    lines = [[name, n_train, n_val, *(f"{metrics[k]:.4f}" if k in metrics else None for k in keys)]
             for name, n_train, n_val, metrics in rows]  # fmt: skip
    print("\nleave-one-dataset-out")
    print(markdown_table(["held out", "train", "val", *keys], lines))
