"""Screening throughput: local against Ray with 1 and 2 workers on the same cores, and a simulated
scale-out to N logical nodes on this one machine.

    python benchmarks/ray_scale.py --bundle BUNDLE --out DIR [--images 160] [--width 1024] [--nodes 4]

Every configuration runs `fundusrt screen` on the same phantoms (hard links: the runs cannot share
outputs) and reports images/s from the first record to the last (start-up apart, which is reported
too). Ray's overhead at equal cores is local's throughput over Ray's with one worker holding all the
cores. The simulated scale-out starts a cluster of N logical one-CPU nodes on this machine
(``ray.cluster_utils.Cluster``): it can only show the cost of more nodes on the same cores; what N
real machines would give is reasoned from the per-stage times the records carry.
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

from fundusrt.runtime.outputs import read_records
from fundusrt.train.synth import linked_phantoms
from fundusrt.train.tables import markdown_table


def run(bundle: Path, images: Path, out: Path, *extra: str) -> dict:
    """One `fundusrt screen` run: wall time, time to the first record, and the steady throughput: the
    slope of records written against time between 20 % and 90 % of the run (start-up and the last
    stragglers left out; records arrive a task at a time, so the slope spans several tasks)."""
    command = [sys.executable, "-m", "fundusrt.runtime.cli", "screen", str(images), "--bundle", str(bundle),
               "--out", str(out), "--quiet", *extra]  # fmt: skip
    log, began, counts = out / "results.jsonl", time.perf_counter(), []
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        if log.exists():
            counts.append((time.perf_counter() - began, log.read_bytes().count(b"\n")))
        time.sleep(0.05)
    wall = time.perf_counter() - began
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(extra) or 'local'} failed: {process.stderr.read()[-2000:]}")
    records = read_records(log)[0]
    done = len(records)
    counts.append((wall, done))

    def reached(share: float) -> tuple[float, int]:
        return next((t, n) for t, n in counts if n >= share * done)

    (t0, n0), (t1, n1) = reached(0.2), reached(0.9)
    stages = {k: statistics.median(r["timings_ms"].get(k, 0.0) for r in records) for k in records[0]["timings_ms"]}
    return {"images": done, "wall_s": wall, "startup_s": reached(1e-9)[0],
            "images_per_s": (n1 - n0) / max(t1 - t0, 1e-9), "stage_ms": stages}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--images", type=int, default=160)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--nodes", type=int, default=4, help="logical nodes of the simulated scale-out (4)")
    args = p.parse_args()
    cores = os.cpu_count() or 1

    images = linked_phantoms(args.out, args.images, seed=600, width=args.width)

    configurations = {
        f"local, {cores} threads": [],
        f"Ray, 1 worker x {cores} CPU": ["--engine", "ray", "--workers", "1", "--cpus-per-worker", str(cores)],
        f"Ray, {cores} workers x 1 CPU": ["--engine", "ray", "--workers", str(cores), "--cpus-per-worker", "1"],
    }
    results = {}
    for name, extra in configurations.items():
        target = args.out / "runs" / name.replace(" ", "_").replace(",", "")
        subprocess.run(["rm", "-rf", str(target)], check=True)
        results[name] = run(args.bundle, images, target, *extra)
        print(f"{name}: {results[name]['images_per_s']:.3f} images/s", file=sys.stderr)

    results[f"Ray, {args.nodes} logical nodes x 1 CPU"] = simulated(args, images)

    local = next(iter(results.values()))["images_per_s"]
    rows = [[name, f"{r['images_per_s']:.3f}", f"{r['images_per_s'] / local:.2f}", f"{r['startup_s']:.1f}",
             f"{r['wall_s']:.1f}"] for name, r in results.items()]  # fmt: skip
    print(f"{args.images} phantoms of {args.width} px, {cores} cores, bundle {args.bundle}\n")
    print(markdown_table(["configuration", "images/s, 20-90 % of the run", "of local", "first record s", "wall s"],
                         rows))  # fmt: skip
    one = results[f"Ray, 1 worker x {cores} CPU"]["images_per_s"]
    print(f"\nRay's overhead at equal cores (1 worker holding all {cores}): {local / one - 1:+.1%} time per image")
    stages = results[f"local, {cores} threads"]["stage_ms"]
    per_image = sum(stages.values())
    print(f"per image on this machine (median ms, one of {cores} threads' view): "
          + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()) + f"; sum {per_image:.0f}")  # fmt: skip
    (args.out / "ray_scale.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


def simulated(args, images: Path) -> dict:
    """The same screening on a cluster of ``--nodes`` logical one-CPU nodes on this machine."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(args.nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        target = args.out / "runs" / "simulated"
        subprocess.run(["rm", "-rf", str(target)], check=True)
        workers = ["--workers", str(args.nodes), "--cpus-per-worker", "1"]
        return run(args.bundle, images, target, "--engine", "ray", "--address", cluster.address, *workers)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
