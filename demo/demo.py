"""The whole mission on phantoms, from nothing, in about a quarter of an hour on 2 cores:

    synthesize -> train the three stages (briefly, at reduced size) -> export FP32/FP16/INT8 ->
    parity check -> screen held-out phantoms and a real photograph -> REFUGE metrics ->
    benchmark -> demo-out/report.md and report.html -> the graders' review page,
    demo-out/screen/report.html

Run by ``make demo``. Each step prints one line when it starts and when it ends; a step that
finished before (its marker in OUT/.done) is reused, so a re-run only does what is missing.
The sizes and epochs below are for a quick look, not for results: see benchmarks/learning.py
for a run that meets the learning targets, and train on real datasets for real use.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import cv2

from fundusrt.runtime.cli import main as fundusrt

HERE = Path(__file__).resolve().parent

# Quick-look recipe: sizes at the models' minimum useful size, few images, few epochs.
RECIPE = {
    "train_phantoms": 160, "test_phantoms": 24, "width": 1024,
    "locate": ["--size", "96", "--epochs", "10", "--batch-size", "8", "--unet-base", "16", "--limit", "128"],
    "segment": ["--size", "192", "--epochs", "16", "--batch-size", "4", "--bce", "1", "--limit", "64"],
    "classify": ["--size", "64", "--epochs", "3", "--batch-size", "8", "--limit", "128"],
    "calibration": "16", "bench_batches": "1,8", "bench_seconds": "1",
}  # fmt: skip


class Demo:
    def __init__(self, out: Path):
        self.out = out
        self.done = out / ".done"
        self.done.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = (
            json.loads((out / "timings.json").read_text()) if (out / "timings.json").exists() else {}
        )
        self.steps: list[tuple[str, str, callable]] = []

    def step(self, key: str, title: str):
        def register(function):
            self.steps.append((key, title, function))
            return function

        return register

    def run(self) -> None:
        total = len(self.steps)
        for i, (key, title, function) in enumerate(self.steps, 1):
            if (self.done / key).exists():
                print(f"[{i}/{total}] {title}: done before ({self.timings.get(key, 0):.0f} s), reused", flush=True)
                continue
            print(f"[{i}/{total}] {title} ...", flush=True)
            start = time.perf_counter()
            function()
            self.timings[key] = time.perf_counter() - start
            (self.out / "timings.json").write_text(json.dumps(self.timings, indent=2))
            (self.done / key).touch()
            print(f"[{i}/{total}] {title}: {self.timings[key]:.0f} s", flush=True)


def call(*argv: str) -> None:
    rc = fundusrt([str(a) for a in argv])
    if rc not in (0, None):
        raise SystemExit(f"demo: `fundusrt {' '.join(map(str, argv))}` exited {rc}")


def build(out: Path) -> Demo:
    demo = Demo(out)
    data, runs, bundle = out / "data", out / "runs", out / "bundle"
    train_spec, test_spec = f"phantom:{data / 'train'}", f"phantom:{data / 'test'}"
    quiet_synth = ["--width", str(RECIPE["width"]), "--jobs", "2"]

    @demo.step("synth", "synthesize phantoms")
    def _():
        call("synth", "--n", RECIPE["train_phantoms"], "--out", data / "train", "--seed", 1, *quiet_synth,
             "--preview", out / "phantom_preview.png")  # fmt: skip
        call("synth", "--n", RECIPE["test_phantoms"], "--out", data / "test", "--seed", 2, *quiet_synth)
        from skimage import data as skdata

        cv2.imwrite(str(data / "retina.jpg"), cv2.cvtColor(skdata.retina(), cv2.COLOR_RGB2BGR))

    for task, title in (("locate", "train the locator (UNet)"), ("segment", "train the segmenter (CE-Net)"),
                        ("classify", "train the classifier ensemble (5 x ResNet50)")):  # fmt: skip

        @demo.step(task, title)
        def _(task=task):
            shutil.rmtree(runs / task, ignore_errors=True)
            call("train", task, "--data", train_spec, "--out", runs / task, *RECIPE[task])

    @demo.step("export", "export the bundle (ONNX FP32, FP16, INT8)")
    def _():
        shutil.rmtree(bundle, ignore_errors=True)
        call("export", "--classifier", runs / "classify", "--segmenter", runs / "segment",
             "--locator", runs / "locate", "--out", bundle,
             "--calibration-count", RECIPE["calibration"], "--max-batch", "16")  # fmt: skip

    @demo.step("check", "parity check against PyTorch")
    def _():
        fundusrt(["export", "--check", str(bundle), "--classifier", str(runs / "classify"), "--segmenter",
                  str(runs / "segment"), "--locator", str(runs / "locate"), "--data", test_spec])  # fmt: skip
        # exit 1 = some tolerance missed: the report shows which; the demo goes on

    @demo.step("screen", "screen held-out phantoms and a real photograph")
    def _():
        shutil.rmtree(out / "screen", ignore_errors=True)
        photos = data / "test" / "Training400"  # the images only, not the annotation masks beside them
        rc = fundusrt(["screen", str(photos), str(data / "retina.jpg"), "--bundle", str(bundle),
                       "--out", str(out / "screen"), "--masks", "--overlays", "--heatmaps", "--refuge-submission",
                       "--quiet"])  # fmt: skip
        if rc == 2:
            raise SystemExit("demo: fundusrt screen failed to start")

    @demo.step("evaluate", "REFUGE metrics through the runtime")
    def _():
        # every CPU backend at each precision it takes; the first column is the reference the others are held to
        fundusrt(["evaluate", str(bundle), "--data", test_spec, "--out", str(out / "evaluation"),
                  "--backend", "onnxruntime,openvino", "--precision", "fp32,fp16,int8,bf16"])  # fmt: skip

    @demo.step("bench", "benchmark (ONNX Runtime and OpenVINO on the CPU vs PyTorch eager)")
    def _():
        call("bench", bundle, "--out", out / "bench", "--batches", RECIPE["bench_batches"],
             "--seconds", RECIPE["bench_seconds"], "--classifier", runs / "classify", "--segmenter",
             runs / "segment", "--locator", runs / "locate", "--images", data / "test" / "Training400")  # fmt: skip

    @demo.step("report", "write report.md and report.html")
    def _():
        from report import write_report

        write_report(out, demo.timings, RECIPE)

    @demo.step("review", "write the graders' review page (fundusrt report)")
    def _():
        call("report", out / "screen")

    return demo


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo-out"))
    p.add_argument("--fresh", action="store_true", help="start again from nothing")
    args = p.parse_args()
    if args.fresh:
        shutil.rmtree(args.out, ignore_errors=True)
    sys.path.insert(0, str(HERE))
    start = time.perf_counter()
    build(args.out).run()
    print(f"demo finished in {time.perf_counter() - start:.0f} s: {args.out / 'report.md'}; "
          f"review page: {args.out / 'screen' / 'report.html'}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
