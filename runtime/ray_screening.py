"""Screening on a Ray cluster: ``fundusrt screen … --engine ray``.

Ray Data streams the inputs' paths to a fixed pool of actors, each holding one warm ``Pipeline``
(the runtime, no torch) on ``cpus_per_worker`` cores and ``gpus_per_worker`` of a GPU. A worker
screens its batch, writes that batch's masks and overlays into ``out`` itself (so ``out`` must be on
a filesystem every node sees, as must the images), and returns the records; they stream back to the
driver, whose ``ResultWriter`` appends each to results.jsonl once, as local screening does. Ray
restarts a killed actor and retries its batch (Ray Data's defaults for actor pools), and a batch's
records reach the driver only when the batch is done, so a worker's death neither loses nor repeats
a record; a killed driver leaves results.jsonl as a local run would, for ``--resume``.

Online serving (Ray Serve or a Triton repository behind HTTP) would wrap the same ``Pipeline`` per
replica; it is not built here.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .inputs import identity

# Each task hands a worker this many engine batches: within a task the pipeline decodes the next batch
# while the engines run on this one, as a local run does, so only a task's first decode is not hidden
# (one task of one batch each left 16 % of a worker's time to undisguised decoding, measured).
BATCHES_PER_TASK = 4


@dataclass(frozen=True)
class Cluster:
    address: str | None = None  # "auto", "ray://…" or "HOST:PORT"; None starts Ray on this machine
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


def _reachable(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT that does not answer is refused at once (Ray itself would keep retrying)."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise ConnectionError(f"no Ray cluster answers at {address} ({e})") from None


class Screener:
    """One Ray actor: a warm ``Pipeline`` and the side files of what it screens."""

    def __init__(self, bundle: str, pipeline: dict, side_files: dict, batch_size: int):
        from .outputs import SideFiles
        from .pipeline import Pipeline

        self.pipeline = Pipeline.load(bundle, **pipeline)
        self.batch_size = batch_size
        self.side_files = SideFiles(**side_files)
        self.keep_images = side_files.get("overlays", False)
        self.heatmaps = side_files.get("heatmaps", False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``path`` as the user spelt it (the record keeps it), ``file`` the absolute path a worker on
        any node opens, ``name`` what its side files are called."""
        paths, files = [str(p) for p in batch["path"]], [str(f) for f in batch["file"]]
        self.side_files.names = {identity(p): str(n) for p, n in zip(paths, batch["name"])}
        records = []
        results = self.pipeline.stream(
            files, batch_size=self.batch_size, keep_images=self.keep_images, heatmaps=self.heatmaps
        )  # fmt: skip
        for path, result in zip(paths, results):
            result.path = path
            self.side_files.write(result)
            result.image, result.heatmaps = None, {}
            records.append(json.dumps(result.to_dict()))
        return {"record": np.asarray(records, dtype=object)}


def screen_on_ray(
    inputs: Iterable[tuple[str, str]],
    *,
    bundle: Path,
    cluster: Cluster,
    batch_size: int,
    pipeline: dict,
    side_files: dict,
    quiet: bool = True,
) -> Iterator[dict]:
    """Records (``Result.to_dict()``) of the (path, side-file name) ``inputs``, as the cluster finishes
    them (not in input order). Connects at once (a wrong address raises ConnectionError here); the work
    starts when the records are iterated."""
    import ray

    items = [{"path": str(p), "file": os.path.abspath(p), "name": name} for p, name in inputs]
    if not items:
        return iter(())
    if not ray.is_initialized():
        _reachable(cluster.address)
        ray.init(address=cluster.address, include_dashboard=False, logging_level="ERROR", log_to_driver=not quiet)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver's own bar counts records
    context.print_on_execution_start = False
    records = ray.data.from_items(items).map_batches(
        Screener,
        fn_constructor_kwargs={
            "bundle": str(bundle),
            "pipeline": {**pipeline, "threads": max(1, int(cluster.cpus_per_worker))},
            "side_files": side_files,
            "batch_size": batch_size,
        },
        compute=ray.data.ActorPoolStrategy(size=cluster.workers),
        num_cpus=cluster.cpus_per_worker,
        num_gpus=cluster.gpus_per_worker,
        batch_size=batch_size * BATCHES_PER_TASK,
        batch_format="numpy",
    )
    return (json.loads(row["record"]) for row in records.iter_rows())
