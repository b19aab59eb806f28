"""``fundusrt export``: three training runs -> a bundle of ONNX graphs in three precisions.

locator     image (N, 3, S, S)                 -> distance_map (N, 1, S, S)     B^N, sigmoid applied
segmenter   image (N, 3, S, S) disc crop       -> disc_cup (N, 2, S, S)         probabilities
classifier  full (N, 3, S, S), crop (N, 3, S, S) -> probability (N,), members (N, M),
                                                    heatmaps (N, K, S/32, S/32) class activation maps
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import onnx
import onnxruntime
import torch

from fundusrt.runtime import __version__
from fundusrt.runtime.bundle import (
    FORMAT,
    VERSION,
    Ensemble,
    GraphFile,
    GraphSpec,
    Manifest,
    Preprocess,
    sha256,
    write_manifest,
)
from fundusrt.runtime.constants import GRAPHS, PRECISIONS, UNCERTAIN_SPREAD, run_precision
from fundusrt.runtime.glaucoma_risk import VcdrRisk
from fundusrt.runtime.normalize import Normalization
from fundusrt.runtime.postprocess import LandmarkPostprocess, SegmentationPostprocess
from fundusrt.train.datasets import load_specs
from fundusrt.train.runs import load_run
from fundusrt.train.tasks import BY_GRAPH, Task

from .graphs import graph_module
from .inputs import calibration_inputs
from .onnx_export import export_onnx, opset_of, tensor_specs
from .precision import module_outputs, to_fp16, to_int8

# Nodes kept FP32 in the FP16 graphs, by PyTorch module name: CE-Net's DAC sum has no normalisation.
KEEP_FP32 = {"segmenter": ("dac",), "locator": (), "classifier": ()}
# Modules left unquantised in the INT8 graphs: the last convolution of each dense head. The classifier
# has no INT8 graph (``KEEPS_FP32``): even with only each member's last stage quantised (the best of
# the splits tried on phantoms: 0.007 there) it moved real photographs' probabilities by 0.135.
INT8_EXCLUDE = {"segmenter": ("head.4",), "locator": ("model.out",)}
# The module up to whose output a graph stays FP32 when computed in BF16 or FP16 (the manifest's
# ``fp32_until``; the FP16 file keeps those nodes FP32).
# BF16's 8-bit mantissa in each ResNet's high-resolution first layers is what moves the classifier's
# ensemble (0.023 on 86 real photographs, all BF16); FP32 through the stem, layer1 and layer2's first
# (downsampling) block holds it to 0.004 on them and on phantoms, at 12 % over all-BF16's time and under
# half of all-FP32's (``benchmarks/bf16_drift.py``: FP32 through the stem 0.025, through layer1 0.009,
# through layer2.0 0.004, through layer2 0.003). Under FP16 the same part keeps its FP32 weights too
# (``precision.to_fp16``): the demo classifier's ensemble moved 0.0056 all FP16 and 0.0023 so, on an AMD Zen 4.
FP32_UNTIL = {"classifier": "layer2.0"}


@dataclass
class GraphPlan:
    """One graph to export: the module, its tensors, and how the runtime feeds it."""

    task: Task
    module: torch.nn.Module
    preprocess: Preprocess
    members: list  # TrainedMember, for provenance


def plan_graphs(runs: dict[str, Path]) -> dict[str, GraphPlan]:
    """graph -> its plan, from the run folder of each graph; the preprocessing is what the checkpoints
    say their models were trained with."""
    plans = {}
    for graph in GRAPHS:
        task = BY_GRAPH[graph]
        trained = load_run(runs[graph], task.name)[1]
        sizes = {m.preprocess["size"] for m in trained}
        if len(sizes) != 1:
            raise ValueError(f"{runs[graph]}: members trained at different sizes {sorted(sizes)}")
        first = trained[0].preprocess
        preprocess = Preprocess(
            size=sizes.pop(),
            normalization=Normalization.from_dict(first["normalization"]),
            crop_factor=float(first["crop_factor"]) if task.takes_crop else None,
        )
        task = replace(task, normalization=preprocess.normalization)  # calibration images as it was trained
        plans[graph] = GraphPlan(task, graph_module(task, trained), preprocess, trained)
    return plans


def _output_names(plan: GraphPlan) -> tuple[str, ...]:
    """The graph's outputs: the task's, or the ensemble's own (``heatmaps`` only where a member has a CAM)."""
    return getattr(plan.module, "output_names", plan.task.graph_outputs)


def _fp32_until(graph: str, path: Path) -> tuple[str, ...]:
    """The tensors up to which ``graph`` stays FP32 under BF16 (``FP32_UNTIL``), found in its ONNX file."""
    if graph not in FP32_UNTIL:
        return ()
    found = module_outputs(onnx.load(path, load_external_data=False), FP32_UNTIL[graph])
    if not found:
        raise ValueError(f"{path}: no output of a module {FP32_UNTIL[graph]!r} found (its FP32 part under BF16)")
    return tuple(found)


def _vcdr_risk(classifier: Path, weight: float | None) -> VcdrRisk | None:
    """The classify run's vCDR model with its weight in the glaucoma probability, or None."""
    path = Path(classifier) / "vcdr_risk.json"
    if not path.is_file() or weight == 0:
        return None
    fitted = json.loads(path.read_text())
    return VcdrRisk.from_dict({**fitted, "weight": fitted["weight"] if weight is None else weight})


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
    precisions: tuple[str, ...] = PRECISIONS,
    vcdr_weight: float | None = None,
    uncertainty: float | None = UNCERTAIN_SPREAD,
    log=print,
) -> Path:
    """``vcdr_weight``: the share of the vCDR's model in the glaucoma probability (default: the one the
    classify run fitted it with); 0 leaves it out. ``uncertainty``: the members' spread (standard
    deviation of their probabilities) from which a record is ``uncertain``; None: not judged."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plans = plan_graphs({"classifier": classifier, "segmenter": segmenter, "locator": locator})
    samples = load_specs(calibration) if calibration and "int8" in precisions else None
    if "int8" in precisions and samples is None:
        raise ValueError("INT8 needs calibration images: pass a data spec (--calibration SPEC)")
    graphs, sources = {}, {}
    for name, plan in plans.items():
        began = time.perf_counter()
        size, inputs = plan.preprocess.size, list(plan.task.graph_inputs)
        example = tuple(torch.randn(2, 3, size, size) for _ in inputs)
        fp32 = out / f"{name}.onnx"
        export_onnx(
            plan.module, example, fp32, input_names=inputs, output_names=list(_output_names(plan)),
            max_batch=max_batch, metadata={"graph": name, "preprocess": asdict(plan.preprocess)},
        )  # fmt: skip
        files, fp32_until = {"fp32": fp32}, _fp32_until(name, fp32)
        if "fp16" in precisions:
            files["fp16"] = to_fp16(fp32, out / f"{name}.fp16.onnx", keep_fp32=KEEP_FP32[name], fp32_until=fp32_until)
        if "int8" in precisions and run_precision("int8", name) == "int8":
            batches = calibration_inputs(plan.task, samples, size, count=calibration_count)
            files["int8"] = to_int8(fp32, out / f"{name}.int8.onnx", batches, exclude=INT8_EXCLUDE[name])
        in_specs, out_specs = tensor_specs(fp32)
        graphs[name] = GraphSpec(
            inputs=in_specs,
            outputs=out_specs,
            files={p: GraphFile(f.name, sha256(f)) for p, f in files.items()},
            preprocess=plan.preprocess,
            fp32_until=fp32_until,
        )
        sources[name] = [{"member": m.member.name, "checkpoint_sha256": sha256(m.checkpoint)} for m in plan.members]
        log(f"export {name}: {', '.join(files)} in {time.perf_counter() - began:.1f} s")

    manifest = Manifest(
        format=FORMAT,
        version=VERSION,
        graphs=graphs,
        landmarks=LandmarkPostprocess.default(),
        segmentation=SegmentationPostprocess.default(),
        ensemble=Ensemble(
            members=tuple(m.member.name for m in plans["classifier"].members),
            threshold=threshold,
            merge="mean of member probabilities",
            vcdr=_vcdr_risk(classifier, vcdr_weight),
            uncertainty=uncertainty,
            heatmaps=dict(getattr(plans["classifier"].module, "heatmap_members", {})),
        ),
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
