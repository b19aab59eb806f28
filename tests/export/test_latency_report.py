import json

import cv2

from fundusrt.export.latency_report import run_bench, speedups, summarise, time_runs
from fundusrt.train.phantoms import render_phantom


def test_summary_statistics():
    s = summarise([10.0] * 18 + [20.0, 40.0], batch=4)
    assert s["p50_ms"] == 10.0 and s["p99_ms"] > s["p95_ms"] > 10.0 and s["images_per_s"] == 400.0
    calls = []
    latencies = time_runs(lambda: calls.append(1), warmup=2, seconds=0.0, min_runs=5, max_runs=9)
    assert len(latencies) == 5 and len(calls) == 7


def test_speedup_is_engine_over_eager_per_graph_and_batch():
    common = {"graph": "locator", "device": "cpu", "precision": "fp32"}
    rows = [
        {**common, "backend": "pytorch-eager", "batch": 1, "images_per_s": 10.0},
        {**common, "backend": "onnxruntime", "batch": 1, "images_per_s": 25.0},
        {**common, "backend": "onnxruntime", "batch": 2, "images_per_s": 99.0},  # no eager row at batch 2
    ]
    assert [s["speedup"] for s in speedups(rows)] == [2.5]


def test_bench_reports_every_configuration_eager_pipeline_and_plots(tiny_runs, tmp_path):
    images = []
    for i in range(2):
        path = tmp_path / f"p{i}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(render_phantom(21, i, width=500).image, cv2.COLOR_RGB2BGR))
        images.append(str(path))
    root = tiny_runs["root"]
    out = tmp_path / "bench"
    report = run_bench(
        tiny_runs["bundle"], out=out, backends=["onnxruntime", "openvino", "tensorrt"], devices=["cpu"],
        precisions=["fp32", "int8", "bf16"], batches=[1, 2], images=images, pipeline_batch=2,
        budget={"warmup": 1, "seconds": 0.0, "min_runs": 2, "max_runs": 2},
        runs={"classifier": root / "cls", "segmenter": root / "seg", "locator": root / "loc"},
    )  # fmt: skip
    timed = [r for r in report["engines"] if "p50_ms" in r and r["backend"] == "onnxruntime"]
    assert len(timed) == (3 + 2) * 2  # (fp32 graphs + int8 graphs: no INT8 classifier) x batches
    assert all(r["runs"] == 2 and r["peak_mib"] > 0 for r in timed)
    openvino = {(r["graph"], r["precision"]) for r in report["engines"] if "p50_ms" in r and r["backend"] == "openvino"}
    assert openvino >= {(g, "fp32") for g in ("locator", "segmenter", "classifier")}
    assert openvino >= {(g, "int8") for g in ("locator", "segmenter")} and ("classifier", "int8") not in openvino
    assert any("skipped" in r and r["backend"] == "tensorrt" for r in report["engines"])  # says why, goes on
    assert any("skipped" in r and r["backend"] == "onnxruntime" and r["precision"] == "bf16" for r in report["engines"])
    assert len([r for r in report["engines"] if r["backend"] == "pytorch-eager"]) == 3 * 2
    # every timed engine row has its speed-up: ONNX Runtime fp32/int8, OpenVINO fp32/int8 (+ bf16 where the CPU has it)
    assert len(report["speedups"]) == len(
        [r for r in report["engines"] if "p50_ms" in r and r["backend"] != "pytorch-eager"]
    )
    (pipeline,) = [p for p in report["pipeline"] if p["precision"] == "fp32" and p["backend"] == "onnxruntime"]
    assert any(p["backend"] == "openvino" for p in report["pipeline"])
    assert pipeline["failed"] == 0 and set(pipeline["stage_ms"]) >= {"decode", "locate", "segment", "classify"}
    machine = json.loads((out / "bench.json").read_text())["machine"]
    assert machine["cores"] > 0 and "openvino" in machine and isinstance(machine["cpu_features"], list)
    md = (out / "bench.md").read_text()
    assert "OpenVINO 20" in md
    assert "Speed-up over PyTorch eager" in md and "End-to-end pipeline" in md
    assert (out / "latency_vs_batch.png").stat().st_size > 0 and (out / "stages.png").stat().st_size > 0
