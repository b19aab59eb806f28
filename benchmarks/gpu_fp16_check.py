"""GPU check of FP16 drift: each trained model in PyTorch on CUDA, FP32 against ``.half()``,
on held-out phantoms: the closest measure available here of what FP16 TensorRT engines will do.

    python benchmarks/gpu_fp16_check.py --classifier RUN --segmenter RUN --locator RUN --data phantom:DIR

Reports mask agreement (segmenter), peak distance in pixels at model size (locator) and
probability drift (classifier ensemble). Needs a CUDA GPU; ``--device cpu`` compares against
bfloat16 for a dry run.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

from fundusrt.export.check import _peak_distance
from fundusrt.export.graphs import reference_graphs
from fundusrt.export.inputs import graph_batches
from fundusrt.train.datasets import load_specs
from fundusrt.train.runs import load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--segmenter", type=Path, required=True)
    p.add_argument("--locator", type=Path, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"{Path(__file__).name}: skipped: no CUDA GPU is visible (torch {torch.__version__})", file=sys.stderr)
        sys.exit(2)
    low = torch.float16 if device.type == "cuda" else torch.bfloat16
    samples = load_specs(args.data)
    references = reference_graphs(classifier=args.classifier, segmenter=args.segmenter, locator=args.locator)
    sizes = {name: load_run(getattr(args, name))[1][0].preprocess["size"] for name in references}
    rows = []
    for name, module in references.items():
        size = sizes[name]
        module = module.eval().to(device)
        half = copy.deepcopy(module).to(low)
        ref, got, views = [], [], []
        with torch.no_grad():
            for batch in graph_batches(name, samples, size):
                inputs = [torch.from_numpy(batch["inputs"][k]).to(device) for k in batch["inputs"]]
                a = module(*inputs)
                b = half(*[x.to(low) for x in inputs])
                a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
                ref.append(a[0].float().cpu().numpy())
                got.append(b[0].float().cpu().numpy())
                views.extend(next(iter(batch["inputs"].values())))
        ref, got = np.concatenate(ref), np.concatenate(got)
        row = {"graph": name, "images": len(ref), "max_abs_diff": float(np.abs(ref - got).max())}
        if name == "segmenter":
            row["mask_agreement"] = float(np.mean((ref > 0.5) == (got > 0.5)))
        if name == "locator":
            row["peak_max_px"] = max(_peak_distance(a[0], b[0], np.ascontiguousarray(v.transpose(1, 2, 0)))
                                     for a, b, v in zip(ref, got, views))  # fmt: skip
        rows.append(row)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"PyTorch FP32 against {str(low).split('.')[-1]} on {device_name}, torch {torch.__version__}")
    for row in rows:
        print(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
