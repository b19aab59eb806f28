"""``fundusrt export``: three training runs -> a bundle of ONNX graphs in three precisions.

locator     image (N, 3, S, S)                 -> distance_map (N, 1, S, S)     B^N, sigmoid applied
segmenter   image (N, 3, S, S) disc crop       -> disc_cup (N, 2, S, S)         probabilities
classifier  full (N, 3, S, S), crop (N, 3, S, S) -> probability (N,), members (N, M)
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime
import torch

from fundusrt.runtime import __version__
from fundusrt.runtime.bundle import GraphSpec, Manifest, TensorSpec, sha256, write_manifest
from fundusrt.runtime.glaucoma_risk import VcdrRisk
from fundusrt.runtime.postprocess import LOG_SIGMA, PEAK_MIN_DISTANCE, PEAK_THRESHOLD
from fundusrt.train.anatomy import FOVEA_DISTANCE_DD
from fundusrt.train.datasets import load_specs
from fundusrt.train.runs import load_run

from .graphs import Activated, ensemble_graph
from .inputs import calibration_inputs
from .onnx_export import export_onnx, opset_of, tensor_specs
from .precision import to_fp16, to_int8

# Nodes kept FP32 in the FP16 graphs, by PyTorch module name: CE-Net's DAC sum has no normalisation.
KEEP_FP32 = {"segmenter": ("dac",), "locator": (), "classifier": ()}
# Modules left unquantised in the INT8 graphs: the last convolution of each dense head, and all of
# each classifier member but its last stage. Measured on 80 held-out phantoms (largest |Δp| of a
# member / of the ensemble): only heads FP32 – / 0.037; + stem, layer1, layer2 FP32 0.051 / 0.013;
# + layer3 FP32 0.019 / 0.007, the only one within the 0.02 tolerance.
INT8_EXCLUDE = {
    "segmenter": ("head.4",),
    "locator": ("model.out",),
    "classifier": ("stem", "layer1", "layer2", "layer3", "fc"),
}


@dataclass
class GraphPlan:
    """One graph to export: the module, its tensors, and the constants the runtime needs."""

    module: torch.nn.Module
    inputs: list[str]
    outputs: list[str]
    size: int
    preprocess: dict
    postprocess: dict
    members: list  # TrainedMember, for provenance


def plan_graphs(*, classifier: Path, segmenter: Path, locator: Path, threshold: float) -> dict[str, GraphPlan]:
    loc = load_run(locator, "locate")[1][0]
    seg = load_run(segmenter, "segment")[1][0]
    cls = load_run(classifier, "classify")[1]
    sizes = {m.preprocess["size"] for m in cls}
    if len(sizes) != 1:
        raise ValueError(f"{classifier}: members trained at different sizes {sorted(sizes)}")
    size = sizes.pop()
    first = cls[0].preprocess
    return {
        "locator": GraphPlan(
            Activated(loc.model), ["image"], ["distance_map"], loc.preprocess["size"], loc.preprocess,
            {"gamma": loc.preprocess.get("gamma"), "log_sigma": LOG_SIGMA, "peak_min_distance": PEAK_MIN_DISTANCE,
             "peak_threshold": PEAK_THRESHOLD, "fovea_distance_dd": FOVEA_DISTANCE_DD},
            [loc],
        ),
        "segmenter": GraphPlan(
            Activated(seg.model), ["image"], ["disc_cup"], seg.preprocess["size"], seg.preprocess,
            {"threshold": 0.5, "crop_factor": seg.preprocess["crop_factor"]}, [seg],
        ),
        "classifier": GraphPlan(
            ensemble_graph(cls), ["full", "crop"], ["probability", "members"], size,
            {"size": size, "views": {"full": "full", "crop": "crop"}, "normalization": first["normalization"],
             "crop_factor": first["crop_factor"]},
            {"threshold": threshold, "members": [m.member.name for m in cls]}, cls,
        ),
    }  # fmt: skip


def _vcdr_risk(classifier: Path, weight: float | None) -> dict | None:
    """The classify run's vCDR model with its weight in the glaucoma probability, or None."""
    path = Path(classifier) / "vcdr_risk.json"
    if not path.is_file() or weight == 0:
        return None
    fitted = json.loads(path.read_text())
    risk = VcdrRisk.from_dict({**fitted, "weight": fitted["weight"] if weight is None else weight})
    return risk.to_dict()


def export_bundle(
    *,
    classifier: Path,
    segmenter: Path,
    locator: Path,
    out: Path,
    calibration: str | None = None,
    calibration_count: int = 64,
    max_batch: int = 64,
    threshold: float = 0.5,
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8"),
    vcdr_weight: float | None = None,
    log=print,
) -> Path:
    """``vcdr_weight``: the share of the vCDR's model in the glaucoma probability (default: the one the
    classify run fitted it with); 0 leaves it out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plans = plan_graphs(classifier=classifier, segmenter=segmenter, locator=locator, threshold=threshold)
    samples = load_specs(calibration) if calibration and "int8" in precisions else None
    if "int8" in precisions and samples is None:
        raise ValueError("INT8 needs calibration images: pass a data spec (--calibration SPEC)")
    graphs, sources = {}, {}
    for name, plan in plans.items():
        began = time.perf_counter()
        example = tuple(torch.randn(2, 3, plan.size, plan.size) for _ in plan.inputs)
        fp32 = out / f"{name}.onnx"
        metadata = {"preprocess": plan.preprocess, "postprocess": plan.postprocess, "graph": name}
        export_onnx(
            plan.module, example, fp32, input_names=plan.inputs, output_names=plan.outputs, max_batch=max_batch,
            metadata=metadata,
        )  # fmt: skip
        files = {"fp32": fp32}
        if "fp16" in precisions:
            files["fp16"] = to_fp16(fp32, out / f"{name}.fp16.onnx", keep_fp32=KEEP_FP32[name])
        if "int8" in precisions:
            batches = calibration_inputs(name, samples, plan.size, count=calibration_count)
            files["int8"] = to_int8(fp32, out / f"{name}.int8.onnx", batches, exclude=INT8_EXCLUDE[name])
        in_specs, out_specs = tensor_specs(fp32)
        graphs[name] = GraphSpec(
            name,
            tuple(TensorSpec.from_dict(t) for t in in_specs),
            tuple(TensorSpec.from_dict(t) for t in out_specs),
            {p: {"path": f.name, "sha256": sha256(f), "bytes": f.stat().st_size} for p, f in files.items()},
            plan.preprocess,
            plan.postprocess,
        )
        sources[name] = [{"member": m.member.name, "checkpoint_sha256": sha256(m.checkpoint)} for m in plan.members]
        log(f"export {name}: {', '.join(files)} in {time.perf_counter() - began:.1f} s")

    manifest = Manifest(
        graphs=graphs,
        ensemble={
            "members": plans["classifier"].postprocess["members"],
            "threshold": threshold,
            "merge": "mean of member probabilities",
            "vcdr": _vcdr_risk(classifier, vcdr_weight),
        },
        producer={
            "fundusrt": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "opset": opset_of(out / "locator.onnx"),
            "sources": sources,
        },  # fmt: skip
        max_batch=max_batch,
    )
    write_manifest(out, manifest)
    return out
