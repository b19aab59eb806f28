"""GPU check of the three model families: a training step of each on CUDA, then the time of a
training step at 512², batch 16, in FP32 and under autocast FP16.

    python benchmarks/gpu_train_check.py [--size 512] [--batch 16] [--steps 10] [--json OUT.json]

Meant for the device tool's GPU machine (PyTorch + CUDA, no TensorRT); runs on the CPU with
``--device cpu`` for a dry run. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from fundusrt.train import losses
from fundusrt.train.models import create_model
from fundusrt.train.tables import markdown_table

MODELS = {  # name -> (builder, kwargs, loss on (output, batch))
    "ResNet50 (crop_3gap)": ("resnet50_3gap", {}, lambda y, b: losses.classification_loss(y, b["label"])),
    "CE-Net": ("cenet_resnet34", {}, lambda y, b: losses.segmentation_loss(y, b["mask"], 1.0)),
    "UNet locator": ("unet_locator", {}, lambda y, b: losses.bi_distance_loss(y, b["map"])),
}


def step_time(model, batch, loss_fn, optimizer, *, amp: bool, steps: int, device) -> float:
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    for i in range(steps + 3):  # three warm-up steps
        if i == 3:
            if device.type == "cuda":
                torch.cuda.synchronize()
            began = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = loss_fn(model(batch["image"]), batch)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - began) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"{Path(__file__).name}: skipped: no CUDA GPU is visible (torch {torch.__version__})", file=sys.stderr)
        sys.exit(2)
    torch.backends.cudnn.benchmark = True
    n, s = args.batch, args.size
    batch = {
        "image": torch.randn(n, 3, s, s, device=device),
        "label": torch.randint(0, 2, (n,), device=device),
        "mask": (torch.rand(n, 2, s, s, device=device) > 0.5).float(),
        "map": torch.rand(n, 1, s, s, device=device),
    }
    rows = []
    name_of_device = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    for label, (builder, kwargs, loss_fn) in MODELS.items():
        model = create_model(builder, **kwargs).to(device).train()
        optimizer = torch.optim.RAdam(model.parameters(), lr=1e-3)
        result = {"model": label, "device": name_of_device, "size": s, "batch": n}
        for precision, amp in (("fp32", False), ("fp16_autocast", True)):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = step_time(model, batch, loss_fn, optimizer, amp=amp, steps=args.steps, device=device)
            result[f"{precision}_ms_per_step"] = round(seconds * 1000, 1)
            result[f"{precision}_img_per_s"] = round(n / seconds, 1)
            if device.type == "cuda":
                result[f"{precision}_peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        result["speedup"] = round(result["fp32_ms_per_step"] / result["fp16_autocast_ms_per_step"], 2)
        rows.append(result)
        del model, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(f"training step, {s}x{s}, batch {n}, {name_of_device}, torch {torch.__version__}")
    keys = ["model", "fp32_ms_per_step", "fp32_img_per_s", "fp16_autocast_ms_per_step", "fp16_autocast_img_per_s"]
    headers = ["model", "FP32 ms/step", "FP32 img/s", "FP16 autocast ms/step", "FP16 img/s", "speed-up"]
    print(markdown_table(headers, ([*(r[k] for k in keys), f"{r['speedup']}x"] for r in rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
