"""``fundusrt export --check``: every graph and precision of a bundle against PyTorch FP32.

On held-out images, each ONNX variant runs in ONNX Runtime (CPU) beside the PyTorch models it
came from. Raw agreement (probability drift, mask pixels, map values, peak positions) and the
task metrics (REFUGE's, through the runtime's post-processing) are reported side by side; each
row passes or fails its tolerance (each task's ``parity``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from fundusrt.runtime.bundle import load_bundle
from fundusrt.train.tables import markdown_table
from fundusrt.train.tasks import BY_GRAPH

from .graphs import reference_graphs
from .inputs import graph_batches

# precision -> tolerances: probability |d|, mask agreement, map |d|, peak distance (px at model size)
TOLERANCES = {
    # FP32 peaks must be identical: to 0.01 px, as sub-pixel refinement turns 1e-6 map noise into ~1e-3 px.
    "fp32": {"probability": 1e-4, "mask_agreement": 0.999, "map": 1e-4, "peak_px": 0.01},
    "fp16": {"probability": 5e-3, "mask_agreement": 0.995, "map": None, "peak_px": 1.0},
    "int8": {"probability": 2e-2, "mask_agreement": 0.99, "map": None, "peak_px": 1.0},
}


def check_bundle(
    bundle_root: Path, *, classifier: Path, segmenter: Path, locator: Path, samples, threads: int = 0
) -> list[dict]:
    """One row per graph and precision, with ``ok`` telling whether it met its tolerances."""
    bundle = load_bundle(bundle_root)
    references = reference_graphs({"locator": locator, "segmenter": segmenter, "classifier": classifier})
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    rows = []
    for graph, reference in references.items():
        task, spec = BY_GRAPH[graph], bundle.graph(graph)
        sessions = {
            p: ort.InferenceSession(str(bundle.file(graph, p)), options, providers=["CPUExecutionProvider"])
            for p in spec.files
        }
        outputs = {p: [] for p in ["torch", *sessions]}
        batches = list(graph_batches(task, samples, spec.preprocess.size))
        with torch.no_grad():
            for batch in batches:
                tensors = [torch.from_numpy(batch["inputs"][t.name]) for t in spec.inputs]
                result = reference.eval()(*tensors)
                outputs["torch"].append([r.numpy() for r in (result if isinstance(result, tuple) else (result,))])
                for precision, session in sessions.items():
                    outputs[precision].append(session.run(None, batch["inputs"]))
        merged = {p: [np.concatenate([b[i] for b in v]) for i in range(len(v[0]))] for p, v in outputs.items()}
        dataset = batches[0]["dataset"] if batches else None
        meta = [row for b in batches for row in b["rows"]]
        for precision in sessions:
            compared = task.parity(merged["torch"], merged[precision], dataset, meta, TOLERANCES[precision])
            rows.append({"graph": graph, "precision": precision, "images": len(meta), **compared})
    return rows


def format_table(rows: list[dict]) -> str:
    first = ["graph", "precision", "images"]
    keys = first + sorted({k for r in rows for k in r} - {*first, "ok"}) + ["ok"]
    return markdown_table(keys, ([_cell(r.get(k)) for k in keys] for r in rows))


def _cell(value):
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return f"{value:.3g}" if isinstance(value, float) else value
