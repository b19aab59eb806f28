"""``fundusrt screen INPUT... --bundle B --out DIR``: screen photographs, never losing a result.

``--engine local`` (the default) runs the pipeline in this process; ``--engine ray`` spreads the
same work over a Ray cluster (``ray_screening``). Either way the records come back here and are
appended to OUT/results.jsonl one by one, and OUT/results.csv is streamed from it at the end.

Exit status: 0 all images processed, 1 some failed (listed at the end), 2 a usage, bundle or
output-folder error, 130 interrupted (``--resume`` finishes the rest).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from .constants import BACKENDS, DEVICES, RUN_PRECISIONS
from .inputs import collect_inputs, identity


def register_command(subparsers) -> None:
    p = subparsers.add_parser(
        "screen",
        help="screen fundus photographs with a bundle",
        description="Glaucoma screening of fundus photographs: one record per image in OUT/results.jsonl.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive), or .txt lists")
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder written by `fundusrt export`")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--batch", type=int, default=8, help="images per engine call (default 8)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument(
        "--precision", choices=RUN_PRECISIONS, default="fp32",
        help="fp32 (default); fp16 for GPUs; int8; bf16 on OpenVINO where the CPU has BF16 (AVX-512 BF16, AMX)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the engines (default: all cores)")
    p.add_argument(
        "--cuda-graph", action="store_true",
        help="TensorRT: replay each batch size as a CUDA graph (lower latency at a fixed batch, e.g. --batch 1)",
    )  # fmt: skip
    p.add_argument("--masks", action="store_true", help="write REFUGE-coded PNG masks at original size")
    p.add_argument("--overlays", action="store_true", help="write pictures of the answers for a person to check")
    p.add_argument(
        "--heatmaps", action="store_true",
        help="write the classifier's evidence (class activation maps) over each photograph and its disc crop",
    )  # fmt: skip
    p.add_argument("--refuge-submission", action="store_true", help="write OUT/refuge in the REFUGE layout")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in the same --out")
    p.add_argument("--retry-failed", action="store_true", help="with --resume, also redo images that failed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    scale = p.add_argument_group("screening on a Ray cluster (pip install 'fundusrt[ray]')")
    scale.add_argument("--engine", choices=("local", "ray"), default="local", help="where to screen (local)")
    scale.add_argument(
        "--address", help="the cluster: auto (the one `ray start` joined here) or HOST:PORT; default: start Ray here"
    )
    scale.add_argument("--workers", type=int, default=1, help="pipelines on the cluster, one per actor (1)")
    scale.add_argument("--cpus-per-worker", type=float, default=1.0, help="cores each worker reserves (1)")
    scale.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPU share of each worker, e.g. 0.25 (0)")
    p.set_defaults(func=run)


def run(args) -> int:
    # Imported here, not at registration, so that `fundusrt --help` stays fast.
    from .bundle import BundleError
    from .engines import EngineError
    from .outputs import OutputError, ResultWriter

    if args.batch < 1:
        return _usage("--batch must be at least 1")
    inputs = collect_inputs(args.inputs)
    if not inputs:
        return _usage("no input images found in " + " ".join(args.inputs))
    paths = [i.path for i in inputs]
    try:
        writer = ResultWriter(
            args.out, names={identity(i.path): i.name for i in inputs}, masks=args.masks, overlays=args.overlays,
            refuge=args.refuge_submission, resume=args.resume, heatmaps=args.heatmaps,
        )  # fmt: skip
    except OutputError as e:
        return _usage(str(e))
    done = writer.done(retry_failed=args.retry_failed)
    todo = [p for p in paths if identity(p) not in done]
    try:
        records = _local(args, todo, writer) if args.engine == "local" else _on_ray(args, todo, writer)
    except (BundleError, EngineError, ImportError, ConnectionError) as e:
        writer.close()
        return _usage(str(e))
    if len(todo) < len(paths):
        print(f"resuming: {len(paths) - len(todo)} of {len(paths)} images already done", file=sys.stderr)

    previous = signal.signal(signal.SIGTERM, _terminate)  # a kill from a scheduler ends like Ctrl-C
    interrupted = False
    try:
        with _progress(len(todo), args.quiet) as bar:
            batch_left = 0
            for _ in records:
                bar.update(1)
                batch_left = (batch_left or args.batch) - 1
                if batch_left == 0:
                    writer.sync()
    except KeyboardInterrupt:
        interrupted = True
    except OutputError as e:
        writer.close()
        return _usage(str(e))
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary = writer.finish({identity(p) for p in paths})
    print(f"{summary.screened} of {len(paths)} images screened; results in {args.out}", file=sys.stderr)
    if interrupted:
        left = len(paths) - summary.images
        print(f"interrupted: {left} images left; rerun with --resume to finish", file=sys.stderr)
        return 130
    if summary.errors:
        print(f"{len(summary.errors)} images failed:", file=sys.stderr)
        for error in summary.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    return 0


def _local(args, todo, writer):
    """Screen here; yields as each record is written. Opens the engines before the first."""
    from .pipeline import Pipeline

    pipeline = Pipeline.load(
        args.bundle, backend=args.backend, device=args.device, precision=args.precision, threads=args.threads,
        cuda_graph=args.cuda_graph,
    )  # fmt: skip
    print(f"engines: {_engines_line(pipeline.description)}", file=sys.stderr)

    def records():
        with pipeline:
            stream = pipeline.stream(todo, batch_size=args.batch, keep_images=args.overlays, heatmaps=args.heatmaps)
            for result in stream:
                writer.write(result)
                result.image, result.heatmaps = None, {}
                yield

    return records()


def _on_ray(args, todo, writer):
    """Screen on a Ray cluster; yields as each record comes back and is written."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ImportError("--engine ray needs Ray: pip install 'fundusrt[ray]'") from None
    from .bundle import load_bundle
    from .ray_screening import Cluster, screen_on_ray

    load_bundle(args.bundle)  # refuse a bad bundle here, not on every worker
    cluster = Cluster(args.address, args.workers, args.cpus_per_worker, args.gpus_per_worker)
    side = writer.side_files
    stream = screen_on_ray(
        [(p, side.names[identity(p)]) for p in todo],
        bundle=args.bundle.resolve(), cluster=cluster, batch_size=args.batch, quiet=args.quiet,
        pipeline=dict(backend=args.backend, device=args.device, precision=args.precision, cuda_graph=args.cuda_graph),
        side_files=dict(
            out=str(side.out.resolve()), masks=side.masks, overlays=side.overlays, refuge=side.refuge,
            heatmaps=side.heatmaps,
        ),
    )  # fmt: skip
    print(f"engines: Ray, {args.workers} workers x {args.cpus_per_worker:g} CPU, {args.gpus_per_worker:g} GPU",
          file=sys.stderr)  # fmt: skip

    def records():
        for record in stream:
            writer.append(record)
            yield

    return records()


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _usage(message: str) -> int:
    print(f"fundusrt screen: {message}", file=sys.stderr)
    return 2


def _engines_line(description: dict[str, str]) -> str:
    kinds = set(description.values())
    return kinds.pop() if len(kinds) == 1 else "; ".join(f"{k}: {v}" for k, v in description.items())


def _progress(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", disable=quiet, dynamic_ncols=True, file=sys.stderr)
