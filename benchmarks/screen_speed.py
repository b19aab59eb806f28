"""Screening speed on this machine: the whole ``screen`` pipeline against its three engines alone and
against the same models in PyTorch eager, at batch 8 on phantoms (ONNX Runtime on the CPU).

    python benchmarks/screen_speed.py [--bundle B --runs R] [--images 32] [--precision fp32,int8]

Without ``--bundle``, builds one at the method's deployment sizes (512² for every model) from
runs trained for one epoch on 8 phantoms: speed does not depend on what the weights learned.
Each measurement runs in its own process (so peak RSS is that phase's alone), after one warm-up
batch; the phases alternate for ``--repeats`` rounds and the median is reported, with the range.

Goals, at the default FP32: pipeline >= 90 % of the engines-alone throughput, >= 2x PyTorch
eager. Other precisions are reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from fundusrt.export.latency_report import peak_memory_mib  # VmHWM: ru_maxrss would carry a parent's peak
from fundusrt.runtime.constants import GRAPHS
from fundusrt.train.tables import markdown_table

ROOT = Path("runs/speed")


def build_bundle(root: Path, size: int) -> tuple[Path, Path]:
    from fundusrt.runtime.cli import main as fundusrt

    data = root / "phantoms-train"
    if not (data / "phantoms.csv").exists():
        fundusrt(["synth", "--n", "16", "--out", str(data), "--seed", "300"])
    spec = f"phantom:{data}"
    common = ["--data", spec, "--epochs", "1", "--limit", "8", "--val-fraction", "0", "--batch-size", "4",
              "--size", str(size)]  # fmt: skip
    for task in ("locate", "segment", "classify"):
        if not (root / task / "config.json").exists():
            assert fundusrt(["train", task, *common, "--out", str(root / task)]) == 0
    bundle = root / "bundle"
    if not (bundle / "manifest.json").exists():
        assert fundusrt(["export", "--classifier", str(root / "classify"), "--segmenter", str(root / "segment"),
                         "--locator", str(root / "locate"), "--out", str(bundle), "--precision", "fp32,int8",
                         "--calibration-count", "16", "--max-batch", "16"]) == 0  # fmt: skip
    return bundle, root


def test_images(root: Path, n: int) -> list[str]:
    from fundusrt.runtime.cli import main as fundusrt

    folder = root / f"phantoms-test-{n}"
    if not (folder / "phantoms.csv").exists():
        fundusrt(["synth", "--n", str(n), "--out", str(folder), "--seed", "301"])
    return sorted(str(p) for p in folder.rglob("*.jpg"))


def phase_engines(bundle: Path, images: int, batch: int, precision: str) -> dict:
    from fundusrt.runtime.bundle import load_bundle
    from fundusrt.runtime.engines import open_engine

    b = load_bundle(bundle)
    engines = {
        g: open_engine(b, g, backend="onnxruntime", device="cpu", precision=precision) for g in b.manifest.graphs
    }
    rng = np.random.default_rng(0)
    feeds = {
        g: {t.name: rng.standard_normal((batch, *t.shape[1:])).astype(np.float32) for t in e.inputs}
        for g, e in engines.items()
    }

    def one_batch():
        for g in GRAPHS:
            engines[g].run(feeds[g])

    one_batch()  # warm-up
    t = time.perf_counter()
    for _ in range(images // batch):
        one_batch()
    seconds = time.perf_counter() - t
    return {"images_per_s": (images // batch) * batch / seconds, "engine": engines["locator"].description}


def phase_pipeline(bundle: Path, images: list[str], batch: int, precision: str) -> dict:
    from fundusrt.runtime.pipeline import Pipeline

    with Pipeline.load(bundle, backend="onnxruntime", device="cpu", precision=precision) as pipeline:
        list(pipeline.stream(images[:batch], batch_size=batch))  # warm-up
        t = time.perf_counter()
        results = list(pipeline.stream(images, batch_size=batch))
        seconds = time.perf_counter() - t
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    stages = {k: statistics.median(r.timings_ms[k] for r in results) for k in results[0].timings_ms}
    return {"images_per_s": len(results) / seconds, "stage_median_ms": stages}


def phase_torch(runs: Path, images: int, batch: int) -> dict:
    import torch

    from fundusrt.train.runs import load_run

    torch.set_num_threads(os.cpu_count() or 1)
    models = {}
    for task in ("locate", "segment", "classify"):
        _, members = load_run(runs / task)
        models[task] = [(m.model, m.preprocess["size"]) for m in members]

    def one_batch():
        with torch.inference_mode():
            for task in ("locate", "segment", "classify"):
                for model, size in models[task]:
                    model.predict(torch.randn(batch, 3, size, size))

    one_batch()
    t = time.perf_counter()
    for _ in range(images // batch):
        one_batch()
    return {"images_per_s": (images // batch) * batch / (time.perf_counter() - t), "torch": torch.__version__}


def run_phase(args, phase: str, precision: str = "fp32") -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--bundle", str(args.bundle), "--runs", str(args.runs),
               "--images", str(args.images), "--batch", str(args.batch), "--precision", precision]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path)
    p.add_argument("--runs", type=Path, help="the training runs behind --bundle (for PyTorch eager)")
    p.add_argument("--size", type=int, default=512, help="model input size when building the bundle")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--precision", default="fp32,int8")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "screen_speed.json")
    p.add_argument("--phase", choices=("engines", "pipeline", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.phase:
        if args.phase == "pipeline":
            report = phase_pipeline(args.bundle, test_images(ROOT, args.images), args.batch, args.precision)
        elif args.phase == "engines":
            report = phase_engines(args.bundle, args.images, args.batch, args.precision)
        else:
            report = phase_torch(args.runs, args.images, args.batch)
        print(json.dumps({**report, "peak_rss_mib": peak_memory_mib()}))
        return 0

    if args.bundle is None:
        args.bundle, args.runs = build_bundle(ROOT, args.size)
    test_images(ROOT, args.images)
    rows = {}
    for _ in range(args.repeats):
        rows.setdefault("torch eager fp32", []).append(run_phase(args, "torch"))
        for precision in args.precision.split(","):
            rows.setdefault(f"engines alone {precision}", []).append(run_phase(args, "engines", precision))
            rows.setdefault(f"screen pipeline {precision}", []).append(run_phase(args, "pipeline", precision))
    summary = {
        name: {
            "images_per_s": statistics.median(r["images_per_s"] for r in runs),
            "range": [min(r["images_per_s"] for r in runs), max(r["images_per_s"] for r in runs)],
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
            **{k: v for k, v in runs[-1].items() if k not in ("images_per_s", "peak_rss_mib")},
        }
        for name, runs in rows.items()
    }
    torch_speed = summary["torch eager fp32"]["images_per_s"]
    print(f"{args.images} phantoms, batch {args.batch}, {os.cpu_count()} cores, median of {args.repeats}\n")
    table = []
    for name, s in summary.items():
        speed = f"{s['images_per_s']:.3f} ({s['range'][0]:.3f}–{s['range'][1]:.3f})"
        ratios = ["", ""]
        if name.startswith("screen pipeline"):
            precision = name.split()[-1]
            s["ratio_to_engines"] = s["images_per_s"] / summary[f"engines alone {precision}"]["images_per_s"]
            s["ratio_to_torch"] = s["images_per_s"] / torch_speed
            ratios = [f"{s['ratio_to_engines']:.1%}", f"{s['ratio_to_torch']:.2f}x"]
        table.append([name, speed, f"{s['peak_rss_mib']:.0f}", *ratios])
    headers = ["what", "images/s (range)", "peak RSS MiB", "pipeline / engines", "pipeline / PyTorch eager"]
    print(markdown_table(headers, table))
    for name, s in summary.items():
        if "stage_median_ms" in s:
            stages = ", ".join(f"{k} {v:.0f}" for k, v in s["stage_median_ms"].items())
            print(f"\n{name}, median ms per image and stage: {stages}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    fp32 = summary.get("screen pipeline fp32")
    met = fp32 is not None and fp32["ratio_to_engines"] >= 0.9 and fp32["ratio_to_torch"] >= 2
    print(f"\ngoals at FP32 (>= 90 % of engines, >= 2x PyTorch eager): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
