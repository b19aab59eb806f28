"""Where OpenVINO's low-precision CPU inference moves the classifier's answers, and what each precision
costs: the classifier graph of a bundle at OpenVINO's f32, bf16 and f16 inference precisions on a
dataset's preprocessed inputs (each member's largest and mean probability change, its largest logit
change, the ensemble's largest change), then each graph's time per image at batch 8 and each precision.

    python benchmarks/bf16_drift.py --bundle BUNDLE --data SPEC [--speed-bundle BUNDLE_512]

``--speed-bundle`` times another bundle's graphs (e.g. the 512² one of screen_speed.py); default: BUNDLE.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import openvino as ov

from fundusrt.export.inputs import graph_batches
from fundusrt.export.latency_report import cpu_features
from fundusrt.runtime.bundle import load_bundle
from fundusrt.runtime.constants import GRAPHS
from fundusrt.train.datasets import load_specs
from fundusrt.train.tables import markdown_table
from fundusrt.train.tasks import BY_GRAPH

PRECISIONS = ("f32", "bf16", "f16")


def compiled(core, path: Path, precision: str):
    return core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"})


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def drift(core, bundle, samples) -> None:
    spec = bundle.graph("classifier")
    batches = list(graph_batches(BY_GRAPH["classifier"], samples, spec.preprocess.size))
    outputs = {}
    for precision in PRECISIONS:
        request = compiled(core, bundle.file("classifier", "fp32"), precision).create_infer_request()
        answers = []
        for batch in batches:
            answers.append({port.get_any_name(): v.copy() for port, v in request.infer(batch["inputs"]).items()})
        outputs[precision] = {k: np.concatenate([a[k] for a in answers]) for k in answers[0]}
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
    drift(core, load_bundle(args.bundle), load_specs(args.data))
    speed(core, load_bundle(args.speed_bundle or args.bundle))


if __name__ == "__main__":
    main()
