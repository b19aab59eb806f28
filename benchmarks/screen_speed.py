"""Screening speed on this machine, every CPU backend side by side in one run: the whole ``screen``
pipeline (batch-8 throughput and batch-1 latency, one photograph at a time as a device screens),
its three engines alone, and the same models in PyTorch eager, on phantoms.

    python benchmarks/screen_speed.py [--bundle B --runs R] [--images 16] [--latency-images 8]
        [--configs onnxruntime:fp32,openvino:fp32,openvino:bf16,openvino:int8,onnxruntime:int8]

Without ``--bundle``, builds one at the method's deployment sizes (512² for every model) from
runs trained for one epoch on 8 phantoms: speed does not depend on what the weights learned.
Each measurement runs in its own process (so peak RSS is that phase's alone), after one warm-up
batch; the phases alternate for ``--repeats`` rounds and the median is reported, with the range.
The pipeline segments a photograph again when the disc it measures differs from the crop's guess
(at most three segmenter passes): how often depends on the weights, so the script counts the passes
and compares the pipeline with the engines alone and with PyTorch eager doing the same work.
The CPU's instruction-set features (AVX2, VNNI, AVX-512 BF16, AMX) are printed with the table.

Goals: the pipeline >= 90 % of its engines alone and >= 2x PyTorch eager (ONNX Runtime FP32);
OpenVINO BF16 >= 1.8x the ONNX Runtime FP32 pipeline where the CPU has BF16, OpenVINO FP32 or INT8
>= 1.1x elsewhere; the fastest pipeline >= 4x PyTorch eager FP32 on a BF16 CPU; one photograph end
to end in <= 1.2 s.
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

from fundusrt.export.latency_report import cpu_features, peak_memory_mib  # VmHWM, not ru_maxrss (a parent's peak)
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


def phase_engines(bundle: Path, images: int, batch: int, backend: str, precision: str) -> dict:
    """Each graph alone on random inputs: ms per image and graph, and images/s with each graph run once."""
    from fundusrt.runtime.bundle import load_bundle
    from fundusrt.runtime.engines import open_engine

    b = load_bundle(bundle)
    engines = {g: open_engine(b, g, backend=backend, device="cpu", precision=precision) for g in b.manifest.graphs}
    rng = np.random.default_rng(0)
    graph_ms = {}
    for g in GRAPHS:
        feeds = {t.name: rng.standard_normal((batch, *t.shape[1:])).astype(np.float32) for t in engines[g].inputs}
        engines[g].run(feeds)  # warm-up
        t = time.perf_counter()
        for _ in range(images // batch):
            engines[g].run(feeds)
        graph_ms[g] = 1e3 * (time.perf_counter() - t) / ((images // batch) * batch)
    return {
        "images_per_s": 1e3 / sum(graph_ms.values()),
        "graph_ms": graph_ms,
        "engine": engines["locator"].description,
    }


def count_segmented(pipeline) -> list[int]:
    """Wraps the pipeline's segmenter so that the returned one-element list counts the crops it segments:
    the pipeline segments a photograph again when the measured disc differs from the crop's guess."""
    engine, count = pipeline.engines["segmenter"], [0]
    run = engine.run

    def counting(feeds):
        count[0] += len(next(iter(feeds.values())))
        return run(feeds)

    engine.run = counting
    return count


def phase_pipeline(bundle: Path, images: list[str], batch: int, backend: str, precision: str) -> dict:
    from fundusrt.runtime.pipeline import Pipeline

    with Pipeline.load(bundle, backend=backend, device="cpu", precision=precision) as pipeline:
        list(pipeline.stream(images[:batch], batch_size=batch))  # warm-up
        segmented = count_segmented(pipeline)
        t = time.perf_counter()
        results = list(pipeline.stream(images, batch_size=batch))
        seconds = time.perf_counter() - t
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    stages = {k: statistics.median(r.timings_ms[k] for r in results) for k in results[0].timings_ms}
    return {"images_per_s": len(results) / seconds, "stage_median_ms": stages, "engine": pipeline.description,
            "segmenter_passes": segmented[0] / len(results)}  # fmt: skip


def phase_latency(bundle: Path, images: list[str], backend: str, precision: str) -> dict:
    """One photograph at a time, end to end (decode to result), as a screening device calls it."""
    from fundusrt.runtime.pipeline import Pipeline

    with Pipeline.load(bundle, backend=backend, device="cpu", precision=precision) as pipeline:
        list(pipeline(images[:1], batch_size=1))  # warm-up
        seconds = []
        for image in images:
            t = time.perf_counter()
            (result,) = pipeline([image], batch_size=1)
            seconds.append(time.perf_counter() - t)
            assert result.ok, result.error
    return {"latency_s": statistics.median(seconds), "latency_range": [min(seconds), max(seconds)],
            "images_per_s": 1 / statistics.median(seconds)}  # fmt: skip


def phase_torch(runs: Path, images: int, batch: int) -> dict:
    import torch

    from fundusrt.train.runs import load_run

    torch.set_num_threads(os.cpu_count() or 1)
    models = {}
    for task in ("locate", "segment", "classify"):
        _, members = load_run(runs / task)
        models[task] = [(m.model, m.preprocess["size"]) for m in members]

    def one_batch(task):
        with torch.inference_mode():
            for model, size in models[task]:
                model.predict(torch.randn(batch, 3, size, size))

    graph_ms = {}
    for graph, task in zip(GRAPHS, ("locate", "segment", "classify")):
        one_batch(task)  # warm-up
        t = time.perf_counter()
        for _ in range(images // batch):
            one_batch(task)
        graph_ms[graph] = 1e3 * (time.perf_counter() - t) / ((images // batch) * batch)
    return {"images_per_s": 1e3 / sum(graph_ms.values()), "graph_ms": graph_ms, "torch": torch.__version__}


def at_passes(graph_ms: dict, passes: float) -> float:
    """Images/s of the three graphs alone doing the pipeline's work: the segmenter ``passes`` times."""
    return 1e3 / (graph_ms["locator"] + passes * graph_ms["segmenter"] + graph_ms["classifier"])


def run_phase(args, phase: str, backend: str = "onnxruntime", precision: str = "fp32") -> dict:
    command = [sys.executable, __file__, "--phase", phase, "--bundle", str(args.bundle), "--runs", str(args.runs),
               "--images", str(args.images), "--latency-images", str(args.latency_images), "--batch", str(args.batch),
               "--configs", f"{backend}:{precision}"]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"phase {phase} {backend} {precision} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


CONFIGS = "onnxruntime:fp32,openvino:fp32,openvino:bf16,openvino:int8,onnxruntime:int8"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path)
    p.add_argument("--runs", type=Path, help="the training runs behind --bundle (for PyTorch eager)")
    p.add_argument("--size", type=int, default=512, help="model input size when building the bundle")
    p.add_argument("--images", type=int, default=16, help="phantoms for the throughput phases (16)")
    p.add_argument("--latency-images", type=int, default=8, help="photographs screened one at a time (8)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--configs", default=CONFIGS, help=f"BACKEND:PRECISION,... ({CONFIGS}); the first is the reference")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "screen_speed.json")
    p.add_argument("--phase", choices=("engines", "pipeline", "latency", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args()
    configs = [tuple(c.split(":")) for c in args.configs.split(",")]

    if args.phase:
        (backend, precision), images = configs[0], test_images(ROOT, args.images)
        if args.phase == "pipeline":
            report = phase_pipeline(args.bundle, images, args.batch, backend, precision)
        elif args.phase == "latency":
            report = phase_latency(args.bundle, images[: args.latency_images], backend, precision)
        elif args.phase == "engines":
            report = phase_engines(args.bundle, args.images, args.batch, backend, precision)
        else:
            report = phase_torch(args.runs, args.images, args.batch)
        print(json.dumps({**report, "peak_rss_mib": peak_memory_mib()}))
        return 0

    if args.bundle is None:
        args.bundle, args.runs = build_bundle(ROOT, args.size)
    test_images(ROOT, args.images)
    rows = {}
    for _ in range(args.repeats):
        rows.setdefault(("torch", "eager fp32", "engines"), []).append(run_phase(args, "torch"))
        for backend, precision in configs:
            for phase in ("engines", "pipeline", "latency"):
                rows.setdefault((backend, precision, phase), []).append(run_phase(args, phase, backend, precision))
    summary = {
        key: {
            "images_per_s": statistics.median(r["images_per_s"] for r in runs),
            "range": [min(r["images_per_s"] for r in runs), max(r["images_per_s"] for r in runs)],
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
            **{k: v for k, v in runs[-1].items() if k not in ("images_per_s", "peak_rss_mib", "range")},
            **({"latency_s": statistics.median(r["latency_s"] for r in runs)} if key[2] == "latency" else {}),
            **(
                {"graph_ms": {g: statistics.median(r["graph_ms"][g] for r in runs) for g in GRAPHS}}
                if "graph_ms" in runs[0]
                else {}
            ),  # fmt: skip
        }
        for key, runs in rows.items()
    }
    eager = summary["torch", "eager fp32", "engines"]
    torch_speed = eager["images_per_s"]
    reference = summary[(*configs[0], "pipeline")]["images_per_s"]
    features = cpu_features()
    print(f"{args.images} phantoms (batch {args.batch}), {args.latency_images} one at a time; {os.cpu_count()} cores "
          f"({', '.join(features) or 'CPU features unknown'}); median of {args.repeats}\n")  # fmt: skip
    table = [["PyTorch eager FP32 (the three models, batch 8)", f"{torch_speed:.3f}", "", "", "", "", "", "",
              f"{eager['peak_rss_mib']:.0f}"]]  # fmt: skip
    for backend, precision in configs:
        engines, pipeline, latency = (summary[backend, precision, k] for k in ("engines", "pipeline", "latency"))
        passes = pipeline["segmenter_passes"]
        pipeline["ratio_to_engines"] = pipeline["images_per_s"] / at_passes(engines["graph_ms"], passes)
        pipeline["ratio_to_torch"] = pipeline["images_per_s"] / at_passes(eager["graph_ms"], passes)
        pipeline["ratio_to_reference"] = pipeline["images_per_s"] / reference
        table.append([
            f"{backend} {precision}", f"{engines['images_per_s']:.3f}", f"{passes:.2f}",
            f"{pipeline['images_per_s']:.3f} ({pipeline['range'][0]:.3f}–{pipeline['range'][1]:.3f})",
            f"{pipeline['ratio_to_engines']:.0%}", f"{latency['latency_s']:.2f}",
            f"{pipeline['ratio_to_reference']:.2f}x", f"{pipeline['ratio_to_torch']:.2f}x",
            f"{max(engines['peak_rss_mib'], pipeline['peak_rss_mib']):.0f}",
        ])  # fmt: skip
    headers = ["backend, precision", "engines alone, images/s", "segmenter passes per photograph",
               "pipeline, images/s (range)", "pipeline / engines at its passes", "one photograph, s",
               f"pipeline / {' '.join(configs[0])} pipeline", "pipeline / PyTorch eager at its passes",
               "peak RSS MiB"]  # fmt: skip
    print(markdown_table(headers, table))
    print("\nms per image and graph, each alone at batch 8: " + "; ".join(
        f"{name} " + ", ".join(f"{g} {v:.0f}" for g, v in s["graph_ms"].items())
        for name, s in [("PyTorch eager", eager)] + [(f"{b} {p}", summary[b, p, "engines"]) for b, p in configs]
    ))  # fmt: skip
    for (backend, precision, _), s in summary.items():
        if "stage_median_ms" in s:
            stages = ", ".join(f"{k} {v:.0f}" for k, v in s["stage_median_ms"].items())
            print(f"\n{backend} {precision} pipeline, median ms per image and stage: {stages}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"cpu_features": features, "configs": {" ".join(k): v for k, v in summary.items()}}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if print_goals(summary, configs, features) else 1


def print_goals(summary: dict, configs: list, features: list[str]) -> bool:
    """Each goal that the configurations measured can answer: met or not."""
    pipeline = {(b, p): summary[b, p, "pipeline"] for b, p in configs}
    goals = []
    if ("onnxruntime", "fp32") in pipeline:
        onnx = pipeline["onnxruntime", "fp32"]
        goals.append(("ONNX Runtime FP32 pipeline >= 90 % of its engines alone (same segmenter passes)",
                      onnx["ratio_to_engines"] >= 0.9))  # fmt: skip
        goals.append(("ONNX Runtime FP32 pipeline >= 2x PyTorch eager (same passes)", onnx["ratio_to_torch"] >= 2))
        has_bf16 = "AVX-512 BF16" in features or "AMX" in features
        if has_bf16 and ("openvino", "bf16") in pipeline:
            goals.append(("OpenVINO BF16 pipeline >= 1.8x ONNX Runtime FP32's (a BF16 CPU)",
                          pipeline["openvino", "bf16"]["images_per_s"] >= 1.8 * onnx["images_per_s"]))  # fmt: skip
        others = [pipeline[c]["images_per_s"] for c in (("openvino", "fp32"), ("openvino", "int8")) if c in pipeline]
        if others:
            goals.append(("OpenVINO FP32 or INT8 pipeline >= 1.1x ONNX Runtime FP32's",
                          max(others) >= 1.1 * onnx["images_per_s"]))  # fmt: skip
    fastest = max(p["ratio_to_torch"] for p in pipeline.values())
    goals.append(("fastest pipeline >= 4x PyTorch eager FP32 (same passes)", fastest >= 4))
    quickest = min(summary[b, p, "latency"]["latency_s"] for b, p in configs)
    goals.append((f"one photograph end to end <= 1.2 s (quickest: {quickest:.2f} s)", quickest <= 1.2))
    print()
    for text, met in goals:
        print(f"goal {text}: {'met' if met else 'NOT met'}")
    return all(met for _, met in goals)


if __name__ == "__main__":
    sys.exit(main())
