"""``fundusrt export --check``: every graph of a bundle, on every CPU backend and precision, against
PyTorch FP32.

On held-out images, each ONNX variant runs through the runtime's own engines beside the PyTorch
models it came from: ONNX Runtime at each precision the bundle holds, and OpenVINO (where it is
installed) at FP32, BF16 (where the CPU has it) and INT8. Raw agreement (probability drift, mask
pixels, map values, peak positions) and the task metrics (REFUGE's, through the runtime's
post-processing) are reported side by side; each row passes or fails its tolerance (each task's
``parity``).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fundusrt.runtime.bundle import Bundle, load_bundle
from fundusrt.runtime.constants import file_precision, run_precision
from fundusrt.runtime.engines import EngineError, open_engine
from fundusrt.train.tables import markdown_table
from fundusrt.train.tasks import BY_GRAPH

from .graphs import reference_graphs
from .inputs import graph_batches
from .latency_report import cpu_description

# precision -> tolerances: probability |d|, mask agreement, map |d|, peak distance (px at model size),
# class activation maps |d| as a share of their range
TOLERANCES = {
    # FP32 peaks must be identical: to 0.01 px, as sub-pixel refinement turns 1e-6 map noise into ~1e-3 px.
    "fp32": {"probability": 1e-4, "mask_agreement": 0.999, "map": 1e-4, "peak_px": 0.01, "heatmap": 1e-3},
    # FP16 and BF16 are held to the agreement a user sees end to end (``bundle_evaluation.AGREEMENT``:
    # a probability within 0.01). FP16's was 5e-3 with no task behind it; on an AMD Zen 4 the phantom
    # classifier's ensemble moved 0.0056 all FP16, and 0.0023 (its spread 0.0031) with its first layers and
    # their weights FP32 (``fp32_until``), over 3x inside 0.01.
    "fp16": {"probability": 1e-2, "mask_agreement": 0.995, "map": None, "peak_px": 1.0, "heatmap": 0.05},
    "int8": {"probability": 2e-2, "mask_agreement": 0.99, "map": None, "peak_px": 1.0, "heatmap": 0.1},
    # BF16 keeps FP32's range with an 8-bit mantissa: held to the task-level agreement a user sees.
    "bf16": {"probability": 1e-2, "mask_agreement": 0.995, "map": None, "peak_px": 1.0, "heatmap": 0.05},
}
OPENVINO_PRECISIONS = ("fp32", "bf16", "int8")

# The same answer from two backends at FP32. Their kernels differ (and differ again between CPU kinds:
# AVX-512 against AMX, AMD against Intel), so their answers differ in the last bits, which the peaks'
# sub-pixel refinement and the ellipse fit magnify; the tests that compare backends hold them to what the
# task reads, not to the bits. A landmark within 1 px of the photograph (REFUGE's best teams' fovea error
# is about 20 px of 1634; the parity check above allows 1 px of the map itself); a probability within
# 1e-3 and a vCDR within 0.005 (records print them to 3 and 2-3 decimals; REFUGE's vCDR MAE is ~0.04).
# Measured on the tiny test bundle (tests/runtime/test_openvino_engine.py prints it), OpenVINO FP32 against
# ONNX Runtime FP32: AMD EPYC Zen 4 (AVX-512 BF16, no AMX): landmarks 0.115-0.137 px, probability and vCDR
# equal; Intel Xeon with AMX: landmarks under 0.05 px, probability under 1e-4, vCDR under 1e-3 (the
# tolerances the test held them to there).
SAME_ANSWER = {"probability": 1e-3, "landmark_px": 1.0, "vcdr": 5e-3}
# Every tolerance stands at least this many times above the drift measured on each CPU kind tried.
MARGIN = 3


def check_bundle(
    bundle_root: Path, *, classifier: Path, segmenter: Path, locator: Path, samples, threads: int | None = None
) -> list[dict]:
    """One row per graph, backend and precision, with ``ok`` telling whether it met its tolerances."""
    bundle = load_bundle(bundle_root)
    references = reference_graphs({"locator": locator, "segmenter": segmenter, "classifier": classifier})
    rows, cpu = [], cpu_description()
    for graph, reference in references.items():
        spec = bundle.graph(graph)
        task = replace(BY_GRAPH[graph], normalization=spec.preprocess.normalization)  # as the bundle feeds it
        engines = candidate_engines(bundle, graph, threads)
        outputs = {key: [] for key in ["torch", *engines]}
        batches = list(graph_batches(task, samples, spec.preprocess.size))
        with torch.no_grad():
            for batch in batches:
                tensors = [torch.from_numpy(batch["inputs"][t.name]) for t in spec.inputs]
                result = reference.eval()(*tensors)
                outputs["torch"].append([r.numpy() for r in (result if isinstance(result, tuple) else (result,))])
                for key, engine in engines.items():
                    answer = engine.run(batch["inputs"])
                    outputs[key].append([answer[t.name] for t in spec.outputs])
        for engine in engines.values():
            engine.close()
        merged = {k: [np.concatenate([b[i] for b in v]) for i in range(len(v[0]))] for k, v in outputs.items()}
        dataset = batches[0]["dataset"] if batches else None
        meta = [row for b in batches for row in b["rows"]]
        for backend, precision in engines:
            compared = task.parity(merged["torch"], merged[(backend, precision)], dataset, meta, TOLERANCES[precision])
            rows.append({"graph": graph, "backend": backend, "precision": precision, "images": len(meta), **compared,
                         "cpu": cpu})  # fmt: skip
    return rows


def candidate_engines(bundle: Bundle, graph: str, threads: int | None) -> dict:
    """(backend, precision) -> engine, on the CPU: ONNX Runtime at each precision the bundle holds; OpenVINO
    at FP32, BF16 and INT8 where it is installed and can (a line on stderr says where it cannot)."""
    files = bundle.graph(graph).files
    engines = {}
    wanted = [("onnxruntime", p) for p in files]
    wanted += [("openvino", p) for p in OPENVINO_PRECISIONS if file_precision(p) in files]
    # a graph kept at FP32 under a precision (KEEPS_FP32) is not run at it: its FP32 row is the one that counts
    wanted = [(b, p) for b, p in wanted if run_precision(p, graph, bundle.graph(graph).fp32_until) == p]
    for backend, precision in wanted:
        try:
            engines[backend, precision] = open_engine(
                bundle, graph, backend=backend, device="cpu", precision=precision, threads=threads
            )
        except EngineError as e:
            if backend == "onnxruntime":
                raise
            print(f"{graph} {backend} {precision}: not checked ({e})", file=sys.stderr)
    return engines


def format_table(rows: list[dict]) -> str:
    first = ["graph", "backend", "precision", "images"]
    last = ["judged_by"] * any("judged_by" in r for r in rows) + ["ok"]  # rows judged by their task metric say so
    keys = first + sorted({k for r in rows for k in r} - {*first, *last, "cpu"}) + last  # the CPU: one line above
    return markdown_table(keys, ([_cell(r.get(k)) for k in keys] for r in rows))


def _cell(value):
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return f"{value:.3g}" if isinstance(value, float) else value
