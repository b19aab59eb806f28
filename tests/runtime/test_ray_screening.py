"""`fundusrt screen --engine ray` on Ray clusters the tests start themselves, loopback only: the same
records as local screening, bad inputs as records, and nothing lost or repeated when a worker or the
driver is killed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from fundusrt.runtime.cli import main
from fundusrt.runtime.outputs import read_records
from fundusrt.train.phantoms import render_phantom

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'fundusrt[ray]')")

IMAGES = 120  # enough batches of 4 that a run is still going when something is killed


def _phantoms(folder: Path, n: int, width: int = 400) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = render_phantom(21, i, width=width).image
        cv2.imwrite(str(folder / f"p{i:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


def _without_timings(path: Path) -> dict:
    records = read_records(path)[0]
    return {r["path"]: {k: v for k, v in r.items() if k != "timings_ms"} for r in records}


def test_an_address_nobody_answers_is_a_one_line_usage_error(tiny_runs, tmp_path, capsys):
    folder = _phantoms(tmp_path / "images", 1)
    rc = main(["screen", str(folder), "--bundle", str(tiny_runs["bundle"]), "--out", str(tmp_path / "out"),
               "--engine", "ray", "--address", "127.0.0.1:1", "--quiet"])  # fmt: skip
    assert rc == 2
    assert "no Ray cluster answers at 127.0.0.1:1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def local_ray():
    # "local": a Ray of its own, even where another test's (or a killed run's) is still shutting down
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def test_records_match_local_screening_and_bad_inputs_get_their_own(tiny_runs, tmp_path, local_ray):
    folder = _phantoms(tmp_path / "images", 6)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (folder / "empty.png").write_bytes(b"")
    bundle = str(tiny_runs["bundle"])
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    assert main(["screen", str(folder), "--bundle", bundle, "--out", str(local), "--quiet", "--masks"]) == 1
    rc = main(["screen", str(folder), "--bundle", bundle, "--out", str(cluster), "--quiet", "--masks",
               "--engine", "ray", "--workers", "2", "--batch", "3"])  # fmt: skip
    assert rc == 1  # two images failed, as locally
    here, there = _without_timings(local / "results.jsonl"), _without_timings(cluster / "results.jsonl")
    assert len(there) == 8 and there == here  # field by field
    assert sum(not r["ok"] for r in there.values()) == 2
    masks = sorted(p.relative_to(cluster / "masks") for p in (cluster / "masks").rglob("*.png"))
    assert masks == sorted(p.relative_to(local / "masks") for p in (local / "masks").rglob("*.png")) and len(masks) == 6
    assert (cluster / "results.csv").read_text().count("\n") == 9


# -- faults, on a two-node cluster on this machine ----------------------------------------------------


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    return _phantoms(tmp_path_factory.mktemp("many"), IMAGES, width=360)


def _start(tiny_runs, folder, out, address, *extra) -> subprocess.Popen:
    command = [sys.executable, "-m", "fundusrt.runtime.cli", "screen", str(folder), "--bundle",
               str(tiny_runs["bundle"]), "--out", str(out), "--quiet", "--engine", "ray", "--address", address,
               "--workers", "2", "--batch", "4", *extra]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_records(log: Path, at_least: int, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and len(read_records(log)[0]) >= at_least:
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended before {at_least} records: {process.stderr.read()[-2000:]}")
        time.sleep(0.05)
    pytest.fail(f"no {at_least} records within {timeout} s")


def _screener_pids() -> list[int]:
    """The processes of the Ray actors that hold a Pipeline (their title names the class)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"Screener" in title and b"MapWorker" in title:
                pids.append(int(entry.name))
    return pids


def _one_record_each(log: Path) -> list[str]:
    return sorted(Path(r["path"]).name for r in read_records(log)[0])


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the worker by its /proc title (Linux)")
def test_a_worker_killed_mid_run_loses_nothing_and_repeats_nothing(tiny_runs, many, tmp_path, two_nodes):
    out = tmp_path / "out"
    process = _start(tiny_runs, many, out, two_nodes.address)
    _wait_for_records(out / "results.jsonl", 4, process)
    pids = _screener_pids()
    assert pids, "no Screener actor found"
    os.kill(pids[0], signal.SIGKILL)
    assert len(read_records(out / "results.jsonl")[0]) < IMAGES, "the worker should have been killed part way"
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    assert _one_record_each(out / "results.jsonl") == [f"p{i:03d}.png" for i in range(IMAGES)]
    assert all(r["ok"] for r in read_records(out / "results.jsonl")[0])


def test_a_killed_driver_resumes_to_one_record_per_image(tiny_runs, many, tmp_path, two_nodes):
    out = tmp_path / "out"
    process = _start(tiny_runs, many, out, two_nodes.address)
    _wait_for_records(out / "results.jsonl", 4, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = read_records(out / "results.jsonl")[0]
    assert 4 <= len(first) < IMAGES, "the driver should have been killed part way"
    resumed = _start(tiny_runs, many, out, two_nodes.address, "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert _one_record_each(out / "results.jsonl") == [f"p{i:03d}.png" for i in range(IMAGES)]
    assert read_records(out / "results.jsonl")[0][: len(first)] == first
    assert json.loads((out / "results.jsonl").read_text().splitlines()[0]) == first[0]
