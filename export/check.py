"""``fundusrt export --check``: every graph and precision of a bundle against PyTorch FP32.

On held-out images, each ONNX variant runs in ONNX Runtime (CPU) beside the PyTorch models it
came from. Raw agreement (probability drift, mask pixels, map values, peak positions) and the
task metrics (REFUGE's) are reported side by side; each row passes or fails its tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from fundusrt.runtime.bundle import load_bundle
from fundusrt.runtime.geometry import Affine
from fundusrt.runtime.postprocess import landmarks_from_map
from fundusrt.train.tasks import TASKS

from .graphs import reference_graphs
from .inputs import graph_batches

# precision -> tolerances (issue 4): probability |d|, mask agreement, map |d|, peak distance (px at model size)
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
    references = reference_graphs(classifier=classifier, segmenter=segmenter, locator=locator)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    rows = []
    for graph, reference in references.items():
        spec = bundle.graph(graph)
        size = spec.preprocess["size"]
        sessions = {
            p: ort.InferenceSession(str(bundle.file(graph, p)), options, providers=["CPUExecutionProvider"])
            for p in spec.files
        }
        outputs = {p: [] for p in ["torch", *sessions]}
        batches = list(graph_batches(graph, samples, size))
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
            rows.append(_compare(graph, precision, merged["torch"], merged[precision], dataset, meta))
    return rows


def _compare(graph, precision, ref, got, dataset, meta) -> dict:
    tol = TOLERANCES[precision]
    row = {"graph": graph, "precision": precision, "images": len(ref[0])}
    checks = []
    if graph == "classifier":
        row["probability_max_diff"] = float(np.abs(ref[0] - got[0]).max())
        row["member_max_diff"] = float(np.abs(ref[1] - got[1]).max())
        checks.append(max(row["probability_max_diff"], row["member_max_diff"]) <= tol["probability"])
        for name, output in (("torch", ref[0]), ("onnx", got[0])):
            scored = [{"output": p, "index": m["index"]} for p, m in zip(output, meta)]
            row[f"auc_{name}"] = TASKS["classify"].evaluate(scored, dataset).get("auc")
    elif graph == "segmenter":
        agree = float(np.mean((ref[0] > 0.5) == (got[0] > 0.5)))
        row["mask_agreement"] = agree
        row["probability_max_diff"] = float(np.abs(ref[0] - got[0]).max())
        checks.append(agree >= tol["mask_agreement"])
        for name, output in (("torch", ref[0]), ("onnx", got[0])):
            metrics = _task_metrics("segment", output, meta, dataset)
            row[f"od_dice_{name}"], row[f"oc_dice_{name}"], row[f"vcdr_mae_{name}"] = (
                metrics["od_dice"], metrics["oc_dice"], metrics["vcdr_mae"],
            )  # fmt: skip
    else:
        row["map_max_diff"] = float(np.abs(ref[0] - got[0]).max())
        distances = [_peak_distance(a[0], b[0], m["view"]) for a, b, m in zip(ref[0], got[0], meta)]
        row["peak_max_px"] = float(np.max(distances))
        if tol["map"] is not None:
            checks.append(row["map_max_diff"] <= tol["map"])
        checks.append(row["peak_max_px"] <= tol["peak_px"])
        for name, output in (("torch", ref[0]), ("onnx", got[0])):
            metrics = _task_metrics("locate", output, meta, dataset)
            row[f"fovea_px_{name}"] = metrics["fovea_distance_px"]
    row["ok"] = all(checks)
    return row


def _peak_distance(a: np.ndarray, b: np.ndarray, view: np.ndarray) -> float:
    """Largest distance between the landmarks found on two maps, on the map's grid (inf where one map
    finds a landmark the other does not)."""
    found = [landmarks_from_map(m, view, Affine.identity()) for m in (a, b)]
    if any(f is None for f in found):
        return float("inf")
    distances = []
    for p, q in zip(*found):
        if (p is None) != (q is None):
            return float("inf")
        if p is not None:
            distances.append(float(np.hypot(*(p - q))))
    return max(distances)


def _task_metrics(task_name, outputs, meta, dataset) -> dict:
    rows = [{**m, "output": output} for output, m in zip(outputs, meta)]
    return TASKS[task_name].evaluate(rows, dataset)


def format_table(rows: list[dict]) -> str:
    keys = (
        ["graph", "precision", "images"]
        + sorted({k for r in rows for k in r} - {"graph", "precision", "images", "ok"})
        + ["ok"]
    )
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k, "")
            cells.append(
                f"{v:.3g}" if isinstance(v, float) else ("yes" if v is True else "NO" if v is False else str(v))
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
