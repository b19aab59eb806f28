"""The memory of `fundusrt screen` as a run grows: the driver's resident set sampled while it screens N
small images (hard links to a few phantoms, so making them is instant), against the images done;
locally or on Ray (a local Ray started by the driver; the workers' memory is theirs, not the driver's).

    python benchmarks/screen_memory.py --bundle BUNDLE --images 10000 --out DIR [--batch 8] [--engine ray]

Prints the resident set at each tenth of the run and its growth from the first tenth to the end: a
writer that kept every record would grow by about 1.5 kB per image (15 MB per 10,000).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from fundusrt.train.synth import linked_phantoms
from fundusrt.train.tables import markdown_table


def resident_mib(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def lines_in(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--width", type=int, default=320, help="phantom width in pixels (320)")
    p.add_argument("--engine", choices=["local", "ray"], default="local", help="ray: 2 workers of 1 CPU each")
    args = p.parse_args()

    inputs = linked_phantoms(args.out, args.images, seed=500, width=args.width)
    screened = args.out / f"screen-{args.engine}"
    command = [sys.executable, "-m", "fundusrt.runtime.cli", "screen", str(inputs), "--bundle", str(args.bundle),
               "--out", str(screened), "--batch", str(args.batch), "--quiet", "--engine", args.engine]  # fmt: skip
    if args.engine == "ray":
        command += ["--workers", "2"]
    if (screened / "results.jsonl").exists():
        command.append("--resume")
    began = time.perf_counter()
    process = subprocess.Popen(command)
    samples = []  # (images done, resident MiB)
    while process.poll() is None:
        rss = resident_mib(process.pid)
        if rss is not None:
            samples.append((lines_in(screened / "results.jsonl"), rss))
        time.sleep(0.5)
    seconds = time.perf_counter() - began
    if process.returncode != 0:
        print(f"fundusrt screen exited {process.returncode}", file=sys.stderr)
        return 1
    rows, tenth = [], args.images // 10
    for k in range(1, 11):
        near = [rss for done, rss in samples if (k - 1) * tenth < done <= k * tenth]
        if near:
            rows.append([f"{k * tenth}", f"{max(near):.1f}"])
    print(f"{args.engine}: {args.images} images of {args.width} px, batch {args.batch}, {os.cpu_count()} cores, "
          f"{seconds:.0f} s ({args.images / seconds:.1f} images/s)\n")  # fmt: skip
    print(markdown_table(["images done", "resident set, peak in that tenth (MiB)"], rows))
    first, last = float(rows[0][1]), float(rows[-1][1])
    print(f"\npeak {max(rss for _, rss in samples):.1f} MiB; from the first tenth to the last: {last - first:+.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
