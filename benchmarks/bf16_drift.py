"""Where OpenVINO's low-precision CPU inference moves the classifier's answers, and what each precision
costs: the classifier graph of a bundle at OpenVINO's f32, bf16 and f16 inference precisions on a
dataset's preprocessed inputs (each member's largest and mean probability change, its largest logit
change, the ensemble's largest change); then the classifier cut where its FP32 part could end (FP32
up to each member's stem, layer1, layer2.0, layer2 or layer3, BF16 after: the runtime's own cut) with
its drift and its time per image; then each graph's time per image at batch 8 and each precision.

    python benchmarks/bf16_drift.py --bundle BUNDLE --data SPEC [--speed-bundle BUNDLE_512]

``--speed-bundle`` times another bundle's graphs (e.g. the 512² one of screen_speed.py); default: BUNDLE.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnx
import openvino as ov

from fundusrt.export.inputs import graph_batches
from fundusrt.export.latency_report import cpu_features
from fundusrt.export.precision import module_outputs
from fundusrt.runtime.bundle import load_bundle
from fundusrt.runtime.constants import GRAPHS
from fundusrt.runtime.engines.openvino_engine import _cut, run_parts
from fundusrt.train.datasets import load_specs
from fundusrt.train.tables import markdown_table
from fundusrt.train.tasks import BY_GRAPH

PRECISIONS = ("f32", "bf16", "f16")
CUTS = ("stem", "layer1", "layer2.0", "layer2", "layer3")  # modules whose outputs end the FP32 part


def compiled(core, model, precision: str):
    """``model``: an ONNX file's path or an ``ov.Model`` (one part of a cut graph)."""
    source = str(model) if isinstance(model, Path) else model
    return core.compile_model(source, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"})


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def parts(core, path: Path, module: str | None, precision: str) -> list:
    """Infer requests of the classifier at ``precision``, whole, or FP32 up to ``module``'s outputs."""
    if module is None:
        return [compiled(core, path, precision).create_infer_request()]
    cut = module_outputs(onnx.load(path, load_external_data=False), module)
    return [
        compiled(core, model, hint).create_infer_request()
        for model, hint in _cut(ov, core.read_model(str(path)), cut, precision)
    ]


def answers(requests, batches) -> dict:
    got = [run_parts(requests, batch["inputs"]) for batch in batches]
    return {k: np.concatenate([a[k] for a in got]) for k in ("probability", "members")}


def drift(core, bundle, samples) -> tuple[list, dict]:
    spec = bundle.graph("classifier")
    batches = list(graph_batches(BY_GRAPH["classifier"], samples, spec.preprocess.size))
    path = bundle.file("classifier", "fp32")
    outputs = {precision: answers(parts(core, path, None, precision), batches) for precision in PRECISIONS}
    members = bundle.manifest.ensemble.members
    reference = outputs["f32"]
    rows = []
    for precision in PRECISIONS[1:]:
        got = outputs[precision]
        change = np.abs(got["members"] - reference["members"])
        logits = np.abs(logit(got["members"]) - logit(reference["members"]))
        ensemble = float(np.abs(got["probability"] - reference["probability"]).max())
        for i, member in enumerate(members):
            rows.append([precision, member, f"{change[:, i].max():.4f}", f"{change[:, i].mean():.4f}",
                         f"{logits[:, i].max():.3f}", f"{ensemble:.4f}"])  # fmt: skip
    print(f"classifier of {bundle.root}, {len(reference['probability'])} images, against OpenVINO f32\n")
    headers = ["precision", "member", "largest change", "mean change", "largest logit change", "ensemble, largest"]
    print(markdown_table(headers, rows))
    return batches, reference


def cuts(core, bundle, batches, reference, speed_bundle, batch: int = 8, runs: int = 2) -> None:
    """The classifier FP32 up to each of ``CUTS`` and BF16 after: drift on the data, time on ``speed_bundle``."""
    rng = np.random.default_rng(0)
    spec = speed_bundle.graph("classifier")
    timed = {n: {t.name: rng.standard_normal((n, *t.shape[1:])).astype(np.float32) for t in spec.inputs}
             for n in (batch, 1)}  # fmt: skip
    rows = []
    for module in (None, *CUTS):
        got = answers(parts(core, bundle.file("classifier", "fp32"), module, "bf16"), batches)
        requests = parts(core, speed_bundle.file("classifier", "fp32"), module, "bf16")
        cells = [f"FP32 through {module}" if module else "BF16 throughout",
                 f"{np.abs(got['probability'] - reference['probability']).max():.4f}",
                 f"{np.abs(got['members'] - reference['members']).max():.4f}"]  # fmt: skip
        for n, feeds in timed.items():
            run_parts(requests, feeds)  # warm-up
            began = time.perf_counter()
            repeats = max(runs, 16 // n)  # at least 16 images
            for _ in range(repeats):
                run_parts(requests, feeds)
            cells.append(f"{1e3 * (time.perf_counter() - began) / (repeats * n):.0f}")
        rows.append(cells)
    print(f"\nthe classifier cut: drift against OpenVINO f32 on {bundle.root}; ms per image on {speed_bundle.root}\n")
    headers = [
        "classifier, BF16 after",
        "ensemble, largest",
        "members, largest",
        f"ms/image batch {batch}",
        "ms/image batch 1",
    ]
    print(markdown_table(headers, rows))


def speed(core, bundle, batch: int = 8, runs: int = 2) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for graph in GRAPHS:
        spec = bundle.graph(graph)
        feeds = {t.name: rng.standard_normal((batch, *t.shape[1:])).astype(np.float32) for t in spec.inputs}
        cells = [graph]
        for precision in PRECISIONS:
            request = compiled(core, bundle.file(graph, "fp32"), precision).create_infer_request()
            request.infer(feeds)  # warm-up
            began = time.perf_counter()
            for _ in range(runs):
                request.infer(feeds)
            cells.append(f"{1e3 * (time.perf_counter() - began) / (runs * batch):.0f}")
        rows.append(cells)
    print(f"\n{bundle.root}: ms per image at batch {batch}; CPU features: {', '.join(cpu_features())}\n")
    print(markdown_table(["graph", *PRECISIONS], rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--data", required=True, help="dataset SPEC, e.g. csv:test.csv")
    p.add_argument("--speed-bundle", type=Path, help="bundle whose graphs are timed (default: --bundle)")
    args = p.parse_args()
    core = ov.Core()
    bundle, speed_bundle = load_bundle(args.bundle), load_bundle(args.speed_bundle or args.bundle)
    batches, reference = drift(core, bundle, load_specs(args.data))
    cuts(core, bundle, batches, reference, speed_bundle)
    speed(core, speed_bundle)


if __name__ == "__main__":
    main()
