"""``fundusrt export``: three training runs -> a bundle of ONNX graphs in three precisions.

    locator     image (N, 3, S, S)                 -> distance_map (N, 1, S, S)     B^N, sigmoid applied
    segmenter   image (N, 3, S, S) disc crop       -> disc_cup (N, 2, S, S)         probabilities
    classifier  full (N, 3, S, S), crop (N, 3, S, S) -> probability (N,), members (N, M)
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import onnx
import onnxruntime
import torch

from fundusrt.runtime import __version__
from fundusrt.runtime.bundle import GraphSpec, Manifest, TensorSpec, sha256, write_manifest
from fundusrt.runtime.postprocess import LOG_SIGMA, PEAK_MIN_DISTANCE, PEAK_THRESHOLD
from fundusrt.train.data import FOVEA_DISTANCE_DD
from fundusrt.train.datasets import load_specs
from fundusrt.train.models import load_model
from fundusrt.train.tasks import TASKS

from .graphs import Activated, EnsembleGraph
from .inputs import calibration_inputs
from .onnx_export import export_onnx, opset_of, tensor_specs
from .precision import to_fp16, to_int8

# Nodes kept FP32 in the FP16 graphs, by PyTorch module name: CE-Net's DAC sum has no normalisation.
KEEP_FP32 = {"segmenter": ("dac",), "locator": (), "classifier": ()}
# Layers left unquantised in the INT8 graphs: the last convolution of each dense head.
INT8_EXCLUDE = {"segmenter": ("head.4",), "locator": ("model.out",), "classifier": ()}


def _members(run: Path, task: str) -> list[tuple[str, torch.nn.Module, dict, Path]]:
    config = json.loads((Path(run) / "config.json").read_text())
    if config["task"] != task:
        raise ValueError(f"{run}: a {config['task']} run, expected a {task} run")
    out = []
    for member in TASKS[task].members:
        if member.name in config["members"]:
            checkpoint = Path(run) / member.name / "best.pt"
            model, payload = load_model(checkpoint)
            out.append((member.name, model, payload["preprocess"], checkpoint))
    if not out:
        raise ValueError(f"{run}: no trained members")
    return out


def export_bundle(
    *,
    classifier: Path,
    segmenter: Path,
    locator: Path,
    out: Path,
    calibration: str | None = None,
    calibration_count: int = 32,
    max_batch: int = 64,
    threshold: float = 0.5,
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8"),
    log=print,
) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    graphs, sources = {}, {}

    loc = _members(locator, "locate")[0]
    seg = _members(segmenter, "segment")[0]
    cls = _members(classifier, "classify")
    sizes = {p["size"] for _, _, p, _ in cls}
    if len(sizes) != 1:
        raise ValueError(f"{classifier}: members trained at different sizes {sorted(sizes)}")
    cls_size = sizes.pop()

    plans = {
        "locator": (Activated(loc[1]), 1, loc[2]["size"], ["image"], ["distance_map"], loc[2], [loc]),
        "segmenter": (Activated(seg[1]), 1, seg[2]["size"], ["image"], ["disc_cup"], seg[2], [seg]),
        "classifier": (
            EnsembleGraph([(name, model, p["view"]) for name, model, p, _ in cls]), 2, cls_size,
            ["full", "crop"], ["probability", "members"], {"size": cls_size, "views": {"full": "full", "crop": "crop"},
            "normalization": cls[0][2]["normalization"], "crop_factor": cls[0][2]["crop_factor"]}, cls,
        ),
    }  # fmt: skip
    postprocess = {
        "locator": {"gamma": loc[2].get("gamma"), "log_sigma": LOG_SIGMA, "peak_min_distance": PEAK_MIN_DISTANCE,
                    "peak_threshold": PEAK_THRESHOLD, "fovea_distance_dd": FOVEA_DISTANCE_DD},
        "segmenter": {"threshold": 0.5, "crop_factor": seg[2]["crop_factor"]},
        "classifier": {"threshold": threshold, "members": [name for name, *_ in cls]},
    }  # fmt: skip
    samples = load_specs(calibration) if calibration and "int8" in precisions else None

    for name, (module, n_inputs, size, inputs, outputs, preprocess, members) in plans.items():
        began = time.perf_counter()
        example = tuple(torch.randn(2, 3, size, size) for _ in range(n_inputs))
        fp32 = out / f"{name}.onnx"
        export_onnx(module, example, fp32, input_names=inputs, output_names=outputs, max_batch=max_batch,
                    metadata={"preprocess": preprocess, "postprocess": postprocess[name], "graph": name})  # fmt: skip
        files = {"fp32": fp32}
        if "fp16" in precisions:
            files["fp16"] = to_fp16(fp32, out / f"{name}.fp16.onnx", keep_fp32=KEEP_FP32[name])
        if "int8" in precisions:
            if samples is None:
                raise ValueError("INT8 needs calibration images: pass a data spec (--calibration SPEC)")
            batches = calibration_inputs(name, samples, size, count=calibration_count)
            files["int8"] = to_int8(fp32, out / f"{name}.int8.onnx", batches, exclude=INT8_EXCLUDE[name])
        in_specs, out_specs = tensor_specs(fp32)
        graphs[name] = GraphSpec(
            name,
            tuple(TensorSpec.from_dict(t) for t in in_specs),
            tuple(TensorSpec.from_dict(t) for t in out_specs),
            {p: {"path": f.name, "sha256": sha256(f), "bytes": f.stat().st_size} for p, f in files.items()},
            preprocess,
            postprocess[name],
        )
        sources[name] = [{"member": m[0], "checkpoint_sha256": sha256(m[3])} for m in members]
        log(f"export {name}: {', '.join(files)} in {time.perf_counter() - began:.1f} s")

    manifest = Manifest(
        graphs=graphs,
        ensemble={"members": [name for name, *_ in cls], "threshold": threshold, "merge": "mean of member probabilities"},
        producer={
            "fundusrt": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "opset": opset_of(out / "locator.onnx"),
            "sources": sources,
        },  # fmt: skip
        max_batch=max_batch,
    )
    write_manifest(out, manifest)
    return out

