"""How fast the command line answers: `fundusrt --help`, and the time from `fundusrt screen` to its first
record (process start, imports, bundle check, engines compiled or loaded, one photograph screened).

    python benchmarks/startup.py --bundle BUNDLE [--image PHOTO] [--repeats 5] [--backends onnxruntime,openvino]

Each measurement is a fresh process, as a device or a scheduler starts one. The first record is seen
by polling OUT/results.jsonl every 5 ms. OpenVINO is measured twice: with its compiled-model cache in
the bundle emptied before each start (cold) and kept (warm). Goal: `fundusrt --help` <= 0.5 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fundusrt.export.latency_report import cpu_features
from fundusrt.train.tables import markdown_table

FUNDUSRT = [sys.executable, "-m", "fundusrt.runtime.cli"]


def help_seconds() -> float:
    began = time.perf_counter()
    subprocess.run([*FUNDUSRT, "--help"], check=True, capture_output=True)
    return time.perf_counter() - began


def first_record_seconds(bundle: Path, image: Path, backend: str, precision: str) -> tuple[float, float]:
    """(seconds to the first record, seconds to the end of the process)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        command = [*FUNDUSRT, "screen", str(image), "--bundle", str(bundle), "--out", str(out), "--quiet",
                   "--device", "cpu", "--backend", backend, "--precision", precision, "--batch", "1"]  # fmt: skip
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        results, first = out / "results.jsonl", None
        while process.poll() is None:
            if first is None and results.exists() and results.stat().st_size > 0:
                first = time.perf_counter() - began
            time.sleep(0.005)
        ended = time.perf_counter() - began
        if process.returncode != 0:
            raise SystemExit(f"screen failed ({process.returncode}): {process.stderr.read()[-2000:]}")
        return (first if first is not None else ended), ended


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--image", type=Path, help="the photograph to screen (default: one phantom)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--backends", default="onnxruntime,openvino")
    p.add_argument("--precision", default="fp32")
    args = p.parse_args()

    image = args.image
    if image is None:
        from fundusrt.train.synth import write_phantom_dataset

        folder = Path(tempfile.mkdtemp()) / "phantom"
        write_phantom_dataset(folder, 1, seed=606)
        image = next(folder.rglob("*.jpg"))

    helps = [help_seconds() for _ in range(args.repeats)]
    rows = [["`fundusrt --help`", f"{statistics.median(helps):.2f}", f"{min(helps):.2f}–{max(helps):.2f}", ""]]
    cache = args.bundle / "engines" / "openvino"
    for backend in args.backends.split(","):
        kinds = ["cold", "warm"] if backend == "openvino" else [""]
        for kind in kinds:
            firsts, ends = [], []
            for _ in range(args.repeats):
                if kind == "cold":
                    shutil.rmtree(cache, ignore_errors=True)
                first, end = first_record_seconds(args.bundle, image, backend, args.precision)
                firsts.append(first)
                ends.append(end)
            label = f"`fundusrt screen` to the first record, {backend} {args.precision}" + (
                f", compile cache {kind}" if kind else ""
            )
            spread = f"{min(firsts):.2f}–{max(firsts):.2f}"
            rows.append([label, f"{statistics.median(firsts):.2f}", spread, f"{statistics.median(ends):.2f}"])
    print(f"{args.repeats} fresh processes each; CPU features: {', '.join(cpu_features()) or 'unknown'}\n")
    print(markdown_table(["what", "seconds (median)", "range", "process ends (median s)"], rows))
    met = statistics.median(helps) <= 0.5
    print(f"\ngoal `fundusrt --help` <= 0.5 s: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
