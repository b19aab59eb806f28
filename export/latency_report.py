"""``fundusrt bench BUNDLE``: latency, throughput and memory of every graph on every backend and
precision present, batch by batch; the end-to-end pipeline's time per stage; the same models in
PyTorch eager in the same run (given the training runs) and the speed-up over them.

Each configuration gets ``--warmup`` runs, then timed runs until ``--seconds`` have passed (at
least ``--min-runs``, at most ``--max-runs``); latencies are reported as p50/p95/p99 with the
spread (p95 / p50). Peak memory is the process's peak resident set while that configuration
ran (Linux: VmHWM, reset through /proc/self/clear_refs before each one). Writes bench.json,
bench.md and two plots (latency against batch size; the pipeline's stage breakdown).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from fundusrt.runtime.bundle import load_bundle
from fundusrt.runtime.constants import GRAPHS, file_precision, run_precision
from fundusrt.runtime.engines import EngineError, open_engine
from fundusrt.train.tables import markdown_table

STAGES = ("decode", "preprocess", "locate", "crop", "segment", "classify", "postprocess")


# -- measuring ---------------------------------------------------------------------------------


def reset_peak_memory() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def peak_memory_mib() -> float:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_runs(call, *, warmup: int, seconds: float, min_runs: int, max_runs: int) -> list[float]:
    """Latencies in ms of ``call()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    latencies, start = [], time.perf_counter()
    while len(latencies) < max_runs and (len(latencies) < min_runs or time.perf_counter() - start < seconds):
        t = time.perf_counter()
        call()
        latencies.append(1e3 * (time.perf_counter() - t))
    return latencies


def summarise(latencies: list[float], batch: int) -> dict:
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {
        "batch": batch, "runs": len(latencies), "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
        "spread": float(p95 / p50), "images_per_s": float(batch * 1e3 / p50),
    }  # fmt: skip


def random_feeds(inputs, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {t.name: rng.standard_normal((batch, *map(int, t.shape[1:]))).astype(np.float32) for t in inputs}


def bench_engines(bundle, backends, devices, precisions, batches, budget) -> list[dict]:
    rows = []
    for backend in backends:
        for device in devices:
            for precision in precisions:
                for graph in GRAPHS:
                    if file_precision(precision) not in bundle.graph(graph).files:
                        continue
                    kept = run_precision(precision, graph, bundle.graph(graph).fp32_until) != precision
                    if kept:  # kept at FP32: its fp32 row times it
                        continue
                    try:
                        engine = open_engine(bundle, graph, backend=backend, device=device, precision=precision)
                    except (EngineError, ValueError) as e:
                        rows.append({"graph": graph, "backend": backend, "device": device, "precision": precision,
                                     "skipped": str(e).splitlines()[0]})  # fmt: skip
                        continue
                    with engine:
                        for batch in batches:
                            if batch > engine.max_batch:
                                continue
                            feeds = random_feeds(engine.inputs, batch)
                            reset_peak_memory()
                            latencies = time_runs(lambda e=engine, f=feeds: e.run(f), **budget)
                            rows.append({
                                "graph": graph, "backend": backend, "device": device, "precision": precision,
                                "engine": engine.description, **summarise(latencies, batch),
                                "peak_mib": peak_memory_mib(),
                            })  # fmt: skip
                            _progress(rows[-1])
    return rows


def bench_eager(bundle, runs: dict, batches, budget) -> list[dict]:
    import torch

    from .graphs import reference_graphs

    torch.set_num_threads(os.cpu_count() or 1)
    modules = reference_graphs(runs)
    rows = []
    for graph in GRAPHS:
        module = modules[graph].eval()
        for batch in batches:
            feeds = {k: torch.from_numpy(v) for k, v in random_feeds(bundle.graph(graph).inputs, batch).items()}

            def call(module=module, feeds=feeds):
                with torch.inference_mode():
                    module(**feeds)

            reset_peak_memory()
            latencies = time_runs(call, **budget)
            rows.append({"graph": graph, "backend": "pytorch-eager", "device": "cpu", "precision": "fp32",
                         "engine": f"torch {torch.__version__} eager", **summarise(latencies, batch),
                         "peak_mib": peak_memory_mib()})  # fmt: skip
            _progress(rows[-1])
    return rows


def bench_pipeline(bundle_path, images, backend, device, precision, batch) -> dict:
    from fundusrt.runtime.pipeline import Pipeline

    with Pipeline.load(bundle_path, backend=backend, device=device, precision=precision) as pipeline:
        list(pipeline.stream(images[:batch], batch_size=batch))  # warm-up
        reset_peak_memory()
        start = time.perf_counter()
        results = list(pipeline.stream(images, batch_size=batch))
        seconds = time.perf_counter() - start
        description = pipeline.description["classifier"]
    ok = [r for r in results if r.ok]
    return {
        "backend": backend, "precision": precision, "batch": batch, "engine": description, "images": len(images),
        "failed": len(results) - len(ok), "images_per_s": len(results) / seconds, "peak_mib": peak_memory_mib(),
        "stage_ms": {k: statistics.median(r.timings_ms.get(k, 0.0) for r in ok) for k in STAGES} if ok else {},
    }  # fmt: skip


def speedups(rows: list[dict]) -> list[dict]:
    """Engine throughput over PyTorch eager's, per graph and batch."""
    eager = {(r["graph"], r["batch"]): r["images_per_s"] for r in rows if r.get("backend") == "pytorch-eager"}
    out = []
    for r in rows:
        key = (r.get("graph"), r.get("batch"))
        if r.get("backend") != "pytorch-eager" and "images_per_s" in r and key in eager:
            out.append({**{k: r[k] for k in ("graph", "backend", "device", "precision", "batch")},
                        "speedup": r["images_per_s"] / eager[key]})  # fmt: skip
    return out


def machine() -> dict:
    facts = {
        "cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(),
    }  # fmt: skip
    facts["cpu_features"] = cpu_features()
    for name in ("numpy", "cv2", "onnxruntime", "openvino", "torch", "tensorrt"):
        module = sys.modules.get(name)
        if module is None and name != "torch":
            try:
                module = __import__(name)
            except ImportError:
                continue
        if module is not None:
            facts[name] = getattr(module, "__version__", "?").split("-")[0]
    try:
        from fundusrt.runtime.engines.cuda import device_name, gpu_count

        facts["gpu"] = device_name(0) if gpu_count() else None
    except Exception:
        facts["gpu"] = None
    return facts


# What the CPU's vector units offer, as /proc/cpuinfo names them: the features that decide whether
# BF16 (native: AVX-512 BF16 or AMX) and INT8 (VNNI) can beat FP32.
CPU_FEATURES = {
    "AVX2": ("avx2",),
    "AVX-512": ("avx512f",),
    "VNNI": ("avx512_vnni", "avx_vnni"),
    "AVX-512 BF16": ("avx512_bf16",),
    "AMX": ("amx_bf16", "amx_int8"),
}


def cpu_features() -> list[str]:
    """The CPU features above that this machine has (empty where /proc/cpuinfo cannot be read)."""
    flags: set[str] = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return [name for name, names in CPU_FEATURES.items() if flags.intersection(names)]


def cpu_description() -> str:
    """The CPU's model and the features above, e.g. ``AMD EPYC (AVX2, AVX-512, VNNI, AVX-512 BF16)``: the
    machine a figure came from, since kernels (and so the last bits of an answer) differ between them."""
    return f"{_cpu_model()} ({', '.join(cpu_features()) or 'no AVX2'})"


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _progress(row: dict) -> None:
    print(f"  {row['graph']:10s} {row['backend']:13s} {row['precision']:5s} batch {row['batch']:3d}: "
          f"p50 {row['p50_ms']:8.1f} ms, {row['images_per_s']:7.2f} img/s", file=sys.stderr)  # fmt: skip


# -- reporting ---------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# fundusrt bench", "",
        f"Bundle `{report['bundle']}`; {m['cpu']}, {m['cores']} cores "
        f"({', '.join(m.get('cpu_features') or ['features unknown'])}); GPU: {m.get('gpu') or 'none'}; "
        f"Python {m['python']}, ONNX Runtime {m.get('onnxruntime', '–')}, OpenVINO {m.get('openvino', 'absent')}, "
        f"OpenCV {m.get('cv2', '–')}, "
        f"torch {m.get('torch', '–')}, TensorRT {m.get('tensorrt', 'absent')}.", "",
        f"Each row: {report['budget']['warmup']} warm-up runs, then timed runs for {report['budget']['seconds']} s "
        f"(at least {report['budget']['min_runs']}); spread = p95 / p50.", "",
        "## Graphs", "",
    ]  # fmt: skip
    rows = []
    for r in report["engines"]:
        if "skipped" in r:
            rows.append([r["graph"], r["backend"], r["precision"], None, f"skipped: {r['skipped']}"])
            continue
        rows.append([r["graph"], r["backend"], r["precision"], r["batch"], f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}",
                     f"{r['p99_ms']:.1f}", f"{r['spread']:.2f}", f"{r['images_per_s']:.2f}", f"{r['peak_mib']:.0f}",
                     r["runs"]])  # fmt: skip
    headers = ["graph", "backend", "precision", "batch", "p50 ms", "p95 ms", "p99 ms", "spread", "images/s"]
    lines.append(markdown_table([*headers, "peak MiB", "runs"], rows))
    if report["speedups"]:
        lines += ["", "## Speed-up over PyTorch eager (same run, same inputs)", ""]
        speedup_rows = report["speedups"]
        shown = ([s["graph"], s["backend"], s["precision"], s["batch"], f"{s['speedup']:.2f}x"] for s in speedup_rows)
        lines.append(markdown_table(["graph", "backend", "precision", "batch", "speed-up"], shown))
    elif not report.get("eager"):
        lines += ["", "PyTorch eager: not measured (give --classifier/--segmenter/--locator runs to compare)."]
    if report.get("pipeline"):
        lines += ["", "## End-to-end pipeline (median ms per image and stage)", ""]
        lines.append(markdown_table(
            ["backend", "precision", "batch", "images/s", *STAGES, "peak MiB"],
            ([p["backend"], p["precision"], p["batch"], f"{p['images_per_s']:.2f}",
              *(f"{p['stage_ms'].get(k, 0):.1f}" for k in STAGES), f"{p['peak_mib']:.0f}"]
             for p in report["pipeline"]),
        ))  # fmt: skip
    return "\n".join(lines) + "\n"


def plots(report: dict, out: Path) -> list[Path]:
    try:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("fundusrt bench: matplotlib is not installed; no plots", file=sys.stderr)
        return []
    written = []
    rows = [r for r in report["engines"] if "p50_ms" in r]
    fig, axes = plt.subplots(1, len(GRAPHS), figsize=(5 * len(GRAPHS), 4), squeeze=False)
    for ax, graph in zip(axes[0], GRAPHS):
        series = {}
        for r in rows:
            if r["graph"] == graph:
                series.setdefault(f"{r['backend']} {r['precision']}", []).append((r["batch"], r["p50_ms"]))
        for label, points in sorted(series.items()):
            points.sort()
            ax.plot([b for b, _ in points], [ms for _, ms in points], marker="o", label=label)
        ax.set(title=graph, xlabel="batch size", ylabel="p50 latency per batch (ms)", xscale="log", yscale="log")
        sizes = sorted({r["batch"] for r in rows if r["graph"] == graph})
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(out / "latency_vs_batch.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    if report.get("pipeline"):
        fig, ax = plt.subplots(figsize=(8, 0.6 * len(report["pipeline"]) + 1.5))
        labels = [f"{p['backend']} {p['precision']} b{p['batch']}" for p in report["pipeline"]]
        left = np.zeros(len(labels))
        for stage in STAGES:
            values = np.array([p["stage_ms"].get(stage, 0.0) for p in report["pipeline"]])
            ax.barh(labels, values, left=left, label=stage)
            left += values
        ax.set(xlabel="median ms per image", title="end-to-end pipeline, by stage")
        ax.legend(fontsize=7, ncol=4, loc="lower right")
        fig.tight_layout()
        written.append(out / "stages.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


# -- the command -------------------------------------------------------------------------------


def run_bench(bundle_path: Path, *, out: Path, backends, devices, precisions, batches, budget, runs=None,
              images=None, pipeline_batch=8) -> dict:  # fmt: skip
    bundle = load_bundle(bundle_path)
    out.mkdir(parents=True, exist_ok=True)
    print(f"benchmarking {bundle_path} into {out}", file=sys.stderr)
    rows = bench_engines(bundle, backends, devices, precisions, batches, budget)
    if runs:
        rows += bench_eager(bundle, runs, batches, budget)
    pipeline = []
    if images:
        for backend in backends:
            for precision in precisions:
                try:
                    pipeline.append(bench_pipeline(bundle_path, images, backend, "auto", precision, pipeline_batch))
                except (EngineError, ValueError) as e:
                    print(f"  pipeline {backend} {precision}: skipped ({e})", file=sys.stderr)
    report = {
        "bundle": str(bundle_path), "machine": machine(), "budget": budget, "engines": rows,
        "speedups": speedups(rows), "eager": bool(runs), "pipeline": pipeline,
    }  # fmt: skip
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(report))
    report["plots"] = [str(p) for p in plots(report, out)]
    return report


def run_command(args) -> int:
    """``fundusrt bench`` (registered in ``export.cli``)."""
    runs = None
    given = [args.classifier, args.segmenter, args.locator]
    if any(given):
        if not all(given):
            sys.exit("fundusrt bench: give all three runs (--classifier, --segmenter, --locator) or none")
        runs = {"classifier": args.classifier, "segmenter": args.segmenter, "locator": args.locator}
    out = args.out or args.bundle / "bench"
    if args.images is None:
        images = _phantoms(out / "phantoms", 16)
    else:
        from fundusrt.runtime.inputs import collect_inputs

        images = [i.path for i in collect_inputs(args.images)]
    report = run_bench(
        args.bundle, out=out, backends=args.backends.split(","), devices=args.devices.split(","),
        precisions=args.precisions.split(","), batches=[int(b) for b in args.batches.split(",")],
        budget={"warmup": args.warmup, "seconds": args.seconds, "min_runs": args.min_runs, "max_runs": args.max_runs},
        runs=runs, images=images, pipeline_batch=args.pipeline_batch,
    )  # fmt: skip
    print(markdown(report))
    print(f"written: {out / 'bench.json'}, {out / 'bench.md'}, " + ", ".join(report["plots"]), file=sys.stderr)
    return 0


def _phantoms(folder: Path, n: int) -> list[str]:
    from fundusrt.train.synth import write_phantom_dataset

    if not (folder / "phantoms.csv").exists():
        write_phantom_dataset(folder, n, seed=404)
    return sorted(str(p) for p in folder.rglob("*.jpg"))
