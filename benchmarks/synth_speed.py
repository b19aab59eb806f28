"""Phantom generation speed on one core: render + JPEG/BMP encode + write, at a fixed width.

    python benchmarks/synth_speed.py [--n 100] [--width 1024]

The aim is >= 20 images/s at about 1024 px on one core. The process is pinned to a
single CPU where the OS allows it and OpenCV's own threads are turned off.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from fundusrt.train.synth import write_phantom_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)

    with tempfile.TemporaryDirectory() as tmp:
        write_phantom_dataset(Path(tmp) / "warmup", 4, seed=99, width=args.width)
        rates = []
        for r in range(args.repeats):
            start = time.perf_counter()
            write_phantom_dataset(Path(tmp) / f"run{r}", args.n, seed=r, width=args.width)
            rates.append(args.n / (time.perf_counter() - start))
    result = {
        "benchmark": "synth_speed",
        "images": args.n,
        "width": args.width,
        "repeats": args.repeats,
        "images_per_s_median": round(statistics.median(rates), 1),
        "images_per_s_min": round(min(rates), 1),
        "images_per_s_max": round(max(rates), 1),
        "cores": 1,
        "cpu": platform.processor() or platform.machine(),
        "opencv": cv2.__version__,
    }
    print(
        f"synth: {result['images_per_s_median']} images/s at {args.width} px on one core "
        f"(median of {args.repeats} runs of {args.n}; range {result['images_per_s_min']}-{result['images_per_s_max']})"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
