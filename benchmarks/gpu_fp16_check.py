"""GPU check of FP16 drift: each trained model in PyTorch on CUDA, FP32 against ``.half()``,
on held-out phantoms: the closest measure available here of what FP16 TensorRT engines will do.

    python benchmarks/gpu_fp16_check.py --classifier RUN --segmenter RUN --locator RUN --data phantom:DIR

Reports each task's parity against the FP16 tolerances of ``fundusrt export --check``: mask
agreement (segmenter), peak distance in pixels at model size (locator), probability drift
(classifier ensemble), and the task metrics of both. Needs a CUDA GPU; ``--device cpu`` compares against
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

from fundusrt.export.check import TOLERANCES
from fundusrt.export.graphs import reference_graphs
from fundusrt.export.inputs import graph_batches
from fundusrt.train.datasets import load_specs
from fundusrt.train.runs import load_run
from fundusrt.train.tasks import BY_GRAPH


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
    runs = {"classifier": args.classifier, "segmenter": args.segmenter, "locator": args.locator}
    rows = []
    for name, module in reference_graphs(runs).items():
        task = BY_GRAPH[name]
        size = load_run(runs[name])[1][0].preprocess["size"]
        module = module.eval().to(device)
        half = copy.deepcopy(module).to(low)
        ref, got, meta, dataset = [], [], [], None
        with torch.no_grad():
            for batch in graph_batches(task, samples, size):
                inputs = [torch.from_numpy(batch["inputs"][k]).to(device) for k in task.graph_inputs]
                a, b = module(*inputs), half(*[x.to(low) for x in inputs])
                ref.append([t.float().cpu().numpy() for t in (a if isinstance(a, tuple) else (a,))])
                got.append([t.float().cpu().numpy() for t in (b if isinstance(b, tuple) else (b,))])
                meta += batch["rows"]
                dataset = batch["dataset"]
        merged = [[np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))] for outs in (ref, got)]
        rows.append({"graph": name, "images": len(meta), **task.parity(*merged, dataset, meta, TOLERANCES["fp16"])})
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"PyTorch FP32 against {str(low).split('.')[-1]} on {device_name}, torch {torch.__version__}")
    for row in rows:
        print(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
