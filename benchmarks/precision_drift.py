"""Where an end-to-end answer moves between precisions: the glaucoma probability split into what it is
made of (the ensemble's mean and the vCDR), per backend and precision against ONNX Runtime FP32.

    python benchmarks/precision_drift.py BUNDLE --data SPEC [--pairs onnxruntime:int8,openvino:int8,openvino:bf16]

``fundusrt evaluate`` shows how far each configuration's records are from the first's; this says why:
a classifier that runs FP32 under INT8 still answers differently when its disc crop, cut around the
disc the INT8 segmenter measured, moves.
"""

from __future__ import annotations

import argparse

import numpy as np

from fundusrt.runtime.pipeline import Pipeline
from fundusrt.train.datasets import load_specs
from fundusrt.train.tables import markdown_table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("--data", required=True, help="photographs to screen (SPEC)")
    p.add_argument("--pairs", default="onnxruntime:int8,openvino:int8,openvino:bf16", help="backend:precision,...")
    args = p.parse_args()
    images = [s.load_image() for s in load_specs(args.data)]
    pairs = [tuple(pair.split(":")) for pair in args.pairs.split(",")]
    records = {}
    for backend, precision in [("onnxruntime", "fp32"), *pairs]:
        with Pipeline.load(args.bundle, backend=backend, device="cpu", precision=precision) as pipeline:
            records[backend, precision] = pipeline(images)
    reference = records["onnxruntime", "fp32"]
    rows = []
    for pair in pairs:
        both = [(a, b) for a, b in zip(reference, records[pair]) if a.ok and b.ok]
        answer = [abs(a.glaucoma_probability - b.glaucoma_probability) for a, b in both]
        ensemble = [abs(a.ensemble_probability - b.ensemble_probability) for a, b in both]
        vcdr = [abs(a.vcdr - b.vcdr) for a, b in both if a.vcdr is not None and b.vcdr is not None]
        decisions = sum(a.glaucoma != b.glaucoma for a, b in both)
        rows.append([":".join(pair), len(both), f"{max(answer):.4f}", f"{max(ensemble):.4f}",
                     f"{np.median(vcdr):.4f} / {max(vcdr):.4f}" if vcdr else None, decisions])  # fmt: skip
    print(markdown_table(["against onnxruntime:fp32", "photographs", "probability, max", "ensemble, max",
                          "vCDR, median / max", "decisions changed"], rows))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
