"""The export side's commands: ``fundusrt export``, ``fundusrt build-engines`` and ``fundusrt bench``.

Registering them imports nothing beyond the standard library and the runtime's constants; torch,
ONNX and the engines are imported when a command runs, so ``fundusrt --help`` answers at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fundusrt.runtime.constants import PRECISIONS, RUN_PRECISIONS, UNCERTAIN_SPREAD


def register_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a bundle (ONNX FP32/FP16/INT8) from three training runs, or check one",
        description="Export three training runs to a bundle, or (--check BUNDLE) compare a bundle with them.",
    )
    p.add_argument("--classifier", type=Path, required=True, help="run folder of `fundusrt train classify`")
    p.add_argument("--segmenter", type=Path, required=True, help="run folder of `fundusrt train segment`")
    p.add_argument("--locator", type=Path, required=True, help="run folder of `fundusrt train locate`")
    p.add_argument("--out", type=Path, help="bundle folder to write")
    p.add_argument("--check", type=Path, metavar="BUNDLE", help="compare BUNDLE's graphs with the runs on --data")
    p.add_argument("--data", help="held-out images for --check (SPEC)")
    p.add_argument("--calibration", help="images for INT8 calibration (SPEC; default: the classifier run's data)")
    p.add_argument("--calibration-count", type=int, default=64, help="images to calibrate INT8 on (64)")
    p.add_argument("--precision", default=",".join(PRECISIONS), help=f"variants to write ({','.join(PRECISIONS)})")
    p.add_argument("--max-batch", type=int, default=64, help="largest batch the graphs accept (64)")
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold on the glaucoma probability")
    p.add_argument(
        "--vcdr-weight", type=float,
        help="share of the classify run's vCDR model in the glaucoma probability (default: the run's; 0: none)",
    )  # fmt: skip
    p.add_argument(
        "--uncertainty", type=float, default=UNCERTAIN_SPREAD,
        help=f"members' spread (std of their probabilities) from which a record is uncertain ({UNCERTAIN_SPREAD})",
    )  # fmt: skip
    p.set_defaults(func=_export)


def _export(args) -> int:
    if bool(args.out) == bool(args.check):
        sys.exit("fundusrt export: give either --out BUNDLE (export) or --check BUNDLE (parity check)")
    if args.check:
        return _check(args)
    from fundusrt.train.config import TrainConfig

    from .bundle_writer import export_bundle

    precisions = tuple(p.strip() for p in args.precision.split(",") if p.strip())
    calibration = args.calibration or TrainConfig.load(args.classifier).data
    export_bundle(
        classifier=args.classifier, segmenter=args.segmenter, locator=args.locator, out=args.out,
        calibration=calibration, calibration_count=args.calibration_count, max_batch=args.max_batch,
        threshold=args.threshold, precisions=precisions, vcdr_weight=args.vcdr_weight,
        uncertainty=args.uncertainty,
    )  # fmt: skip
    print(f"bundle: {args.out}")
    return 0


def _check(args) -> int:
    if not args.data:
        sys.exit("fundusrt export --check: give the held-out images with --data SPEC")
    from fundusrt.train.datasets import load_specs

    from .check import check_bundle, format_table

    rows = check_bundle(
        args.check, classifier=args.classifier, segmenter=args.segmenter, locator=args.locator,
        samples=load_specs(args.data),
    )  # fmt: skip
    if rows:
        print(f"on {rows[0]['cpu']}")
    print(format_table(rows))
    (Path(args.check) / "check.json").write_text(json.dumps(rows, indent=2) + "\n")
    failed = [f"{r['graph']}/{r['backend']}/{r['precision']}" for r in rows if not r["ok"]]
    print("all within tolerance" if not failed else f"outside tolerance: {', '.join(failed)}")
    return 1 if failed else 0


def register_build_engines(subparsers) -> None:
    p = subparsers.add_parser(
        "build-engines",
        help="build TensorRT engines for a bundle (needs TensorRT and an NVIDIA GPU)",
        description="Build TensorRT engines for every graph of a bundle, keyed by GPU, TensorRT version, "
        "precision and ONNX hash, then compare them with ONNX Runtime FP32.",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    p.add_argument("--max-batch", type=int, help="largest batch of the optimisation profile (default: the bundle's)")
    p.add_argument("--opt-batch", type=int, default=8, help="batch TensorRT tunes for (8)")
    p.add_argument("--workspace-gib", type=float, default=4.0)
    p.set_defaults(func=_build_engines)


def _build_engines(args) -> int:
    from .engines import EngineBuildUnavailable, build_engines

    try:
        built = build_engines(
            args.bundle, precision=args.precision, max_batch=args.max_batch, opt_batch=args.opt_batch,
            workspace_gib=args.workspace_gib,
        )  # fmt: skip
    except EngineBuildUnavailable as e:
        print(f"fundusrt build-engines: {e}", file=sys.stderr)
        return 2
    for entry in built:
        print(f"{entry.graph}: {entry.path}")
    return 0


def register_bench(subparsers) -> None:
    p = subparsers.add_parser("bench", help="latency, throughput and memory of a bundle, against PyTorch eager")
    p.add_argument("bundle", type=Path)
    p.add_argument("--out", type=Path, default=None, help="report folder (default: BUNDLE/bench)")
    p.add_argument("--backends", default="onnxruntime,openvino", help="comma-separated: onnxruntime,openvino,tensorrt")
    p.add_argument("--devices", default="auto", help="comma-separated: cpu,cuda (default: auto)")
    p.add_argument(
        "--precisions", default=",".join(RUN_PRECISIONS), help="comma-separated; each backend runs those it takes"
    )
    p.add_argument("--batches", default="1,4,8,16")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per configuration (3)")
    p.add_argument("--min-runs", type=int, default=3)
    p.add_argument("--max-runs", type=int, default=200)
    p.add_argument("--classifier", type=Path, help="the runs behind the bundle: adds PyTorch eager")
    p.add_argument("--segmenter", type=Path)
    p.add_argument("--locator", type=Path)
    p.add_argument("--images", nargs="*", default=None,
                   help="images (or folders) for the end-to-end pipeline; default: 16 phantoms")  # fmt: skip
    p.add_argument("--pipeline-batch", type=int, default=8)
    p.set_defaults(func=_bench)


def _bench(args) -> int:
    from .latency_report import run_command

    return run_command(args)
