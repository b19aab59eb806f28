"""The OpenVINO backend on a real (tiny) bundle: the same answers as ONNX Runtime, its precisions,
its compile cache, and ``auto``'s choice on a CPU."""

import sys

import numpy as np
import pytest

from fundusrt.export.check import MARGIN, SAME_ANSWER, TOLERANCES
from fundusrt.export.latency_report import cpu_description
from fundusrt.runtime.bundle import load_bundle
from fundusrt.runtime.constants import GRAPHS
from fundusrt.runtime.engines import EngineError, open_engine
from fundusrt.runtime.pipeline import Pipeline
from fundusrt.train.phantoms import render_phantom

ov = pytest.importorskip("openvino", reason="OpenVINO is in the dev extra; install it to test the backend")
from fundusrt.runtime.engines import openvino_engine  # noqa: E402


FP32 = TOLERANCES["fp32"]["map"]  # two FP32 computations of a graph: its outputs (relative to their scale)


@pytest.fixture(scope="module")
def bundle(tiny_runs):
    return load_bundle(tiny_runs["bundle"])


def feeds(engine, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return {t.name: rng.uniform(-2, 2, (batch, *t.shape[1:])).astype(np.float32) for t in engine.inputs}


def compare(bundle, graph, precision, reference_precision="fp32", **kw):
    with open_engine(bundle, graph, backend="onnxruntime", device="cpu", precision=reference_precision) as ort:
        inputs = feeds(ort)
        expected = ort.run(inputs)
    with open_engine(bundle, graph, backend="openvino", device="cpu", precision=precision, **kw) as engine:
        got = engine.run(inputs)
        computed_in = engine.inference_precision
    assert got.keys() == expected.keys()
    # relative to each output's scale: the class activation maps are logits, not probabilities
    return max(
        float(np.abs(got[k] - expected[k]).max() / max(1.0, np.abs(expected[k]).max())) for k in got
    ), computed_in


@pytest.mark.parametrize("graph", GRAPHS)
def test_fp32_gives_onnx_runtime_s_answers(bundle, graph):
    difference, computed_in = compare(bundle, graph, "fp32")
    print(f"\n{graph}: OpenVINO FP32 against ONNX Runtime FP32: {difference:.3g} (tolerance {FP32:.0e})")
    assert difference <= FP32
    assert computed_in == "f32"  # not OpenVINO's default on a BF16 CPU


@pytest.mark.parametrize("graph", ["locator", "segmenter"])
def test_int8_runs_the_bundle_s_quantised_graph_as_onnx_runtime_does(bundle, graph):
    # the same INT8 file: kernels may round differently, not compute differently (u8 activations)
    difference, _ = compare(bundle, graph, "int8", reference_precision="int8")
    print(f"\n{graph}: OpenVINO INT8 against ONNX Runtime INT8 on {cpu_description()}: {difference:.3g} (tolerance 2e-2)")
    assert difference < 2e-2


has_bf16 = pytest.mark.skipif(
    not openvino_engine.cpu_has_bf16(ov.Core()), reason="this CPU has no native BF16 (AVX-512 BF16 or AMX)"
)


def without_fp32_part(tiny_runs, tmp_path):
    """A copy of the bundle whose manifest names no FP32 part (as a version-3 bundle reads)."""
    import json
    import shutil

    root = shutil.copytree(tiny_runs["bundle"], tmp_path / "bundle", ignore=shutil.ignore_patterns("engines"))
    manifest = json.loads((root / "manifest.json").read_text())
    for graph in manifest["graphs"].values():
        graph["fp32_until"] = []
    (root / "manifest.json").write_text(json.dumps(manifest))
    return load_bundle(root)


def test_a_graph_a_precision_would_move_too_far_runs_at_fp32(bundle, tiny_runs, tmp_path):
    # the classifier under int8, and under bf16 where its bundle names no FP32 part (KEEPS_FP32): the
    # FP32 graph at FP32, and the line says so
    cases = [(bundle, "int8")]
    if openvino_engine.cpu_has_bf16(ov.Core()):
        cases.append((without_fp32_part(tiny_runs, tmp_path), "bf16"))
    for source, precision in cases:
        difference, computed_in = compare(source, "classifier", precision)
        assert computed_in == "f32" and difference <= FP32
        with open_engine(source, "classifier", backend="openvino", device="cpu", precision=precision) as engine:
            assert f"classifier kept at fp32 ({precision} moves its output" in engine.description


def test_a_graph_cut_at_its_fp32_part_computes_what_the_whole_graph_does(bundle):
    spec = bundle.graph("classifier")
    path = bundle.file("classifier")
    parts = openvino_engine._cut(ov, ov.Core().read_model(str(path)), spec.fp32_until, "f32")
    assert [hint for _, hint in parts] == ["f32", "f32"]
    first, rest = (model for model, _ in parts)
    assert {p.get_any_name() for p in first.inputs} == {"full", "crop"}
    assert set(spec.fp32_until) <= {p.get_any_name() for p in first.outputs}  # what crosses the cut
    assert {p.get_any_name() for p in rest.outputs} == {t.name for t in spec.outputs}
    with open_engine(bundle, "classifier", backend="onnxruntime", device="cpu") as engine:
        inputs = feeds(engine)
        expected = engine.run(inputs)
    requests = [
        ov.Core().compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": h}).create_infer_request() for m, h in parts
    ]
    got = openvino_engine.run_parts(requests, inputs)
    for name, value in expected.items():
        assert np.abs(got[name] - value).max() <= FP32 * max(1.0, np.abs(value).max()), name


@has_bf16
def test_a_manifest_naming_tensors_the_graph_lacks_is_one_line(bundle):
    from dataclasses import replace

    spec = replace(bundle.graph("classifier"), fp32_until=("no_such_tensor",))
    bundle = replace(bundle, manifest=replace(bundle.manifest, graphs={**bundle.manifest.graphs, "classifier": spec}))
    with pytest.raises(EngineError, match=r"classifier\.onnx: OpenVINO could not compile it: .*no_such_tensor"):
        openvino_engine.OpenVinoEngine(bundle, "classifier", precision="bf16")


@has_bf16
def test_bf16_runs_the_classifier_s_first_layers_at_fp32(bundle):
    difference, _ = compare(bundle, "classifier", "bf16")
    assert difference < 0.1  # raw drift only; task-level parity is export --check's and evaluate's
    with open_engine(bundle, "classifier", backend="openvino", device="cpu", precision="bf16") as engine:
        assert engine.inference_precisions == ("f32", "bf16")
        assert "first layers at fp32 (up to 1 tensor)" in engine.description
        assert "kept at fp32" not in engine.description


@has_bf16
@pytest.mark.parametrize("graph", ["locator", "segmenter"])
def test_bf16_stays_close_to_fp32(bundle, graph):
    difference, computed_in = compare(bundle, graph, "bf16")
    assert computed_in == "bf16"
    assert difference < 0.1  # raw drift only; task-level parity is export --check's and evaluate's


def test_bf16_on_a_cpu_without_it_is_one_line(bundle, monkeypatch):
    monkeypatch.setattr(openvino_engine, "cpu_has_bf16", lambda core: False)
    with pytest.raises(EngineError, match=r"has no native BF16 \(AVX-512 BF16 or AMX\); use fp32 or int8"):
        open_engine(bundle, "locator", backend="openvino", device="cpu", precision="bf16")


def test_precisions_it_does_not_take_are_refused(bundle):
    with pytest.raises(EngineError, match="FP16 graphs are for GPUs"):
        open_engine(bundle, "locator", backend="openvino", device="cpu", precision="fp16")
    with pytest.raises(EngineError, match="bf16 runs on the openvino backend"):
        open_engine(bundle, "locator", backend="onnxruntime", device="cpu", precision="bf16")
    with pytest.raises(EngineError, match="on the CPU"):
        open_engine(bundle, "locator", backend="openvino", device="cuda")


def test_compiled_models_are_cached_in_the_bundle(tiny_runs, tmp_path):
    import shutil

    root = shutil.copytree(tiny_runs["bundle"], tmp_path / "bundle")
    shutil.rmtree(root / "engines", ignore_errors=True)
    with open_engine(load_bundle(root), "segmenter", backend="openvino", device="cpu") as engine:
        assert "no compile cache" not in engine.description
    cached = list((root / "engines" / "openvino").iterdir())
    assert cached, "OpenVINO wrote no compiled model"
    with open_engine(load_bundle(root), "segmenter", backend="openvino", device="cpu"):
        pass  # a second start reads the cache (and must not grow it)
    assert sorted(cached) == sorted((root / "engines" / "openvino").iterdir())


def test_a_bundle_it_cannot_write_to_runs_without_the_cache(tiny_runs, tmp_path):
    import shutil

    root = shutil.copytree(tiny_runs["bundle"], tmp_path / "bundle")
    shutil.rmtree(root / "engines", ignore_errors=True)  # other tests may have cached into the shared bundle
    (root / "engines").mkdir()
    (root / "engines" / "openvino").write_text("not a folder")  # mkdir fails as on a read-only medium
    with open_engine(load_bundle(root), "locator", backend="openvino", device="cpu") as engine:
        assert engine.description.endswith("no compile cache (bundle read-only)")


def test_auto_takes_openvino_on_a_cpu_and_says_why(bundle):
    with open_engine(bundle, "locator", device="cpu") as engine:
        assert engine.description.startswith("openvino")
        assert "(auto: OpenVINO is installed and this is a CPU)" in engine.description
    with open_engine(bundle, "locator", device="cpu", precision="fp16") as engine:
        assert engine.description.startswith("onnxruntime")
        assert "(auto: OpenVINO does not take fp16 on a CPU)" in engine.description


def test_auto_without_openvino_takes_onnx_runtime_and_says_why(bundle, monkeypatch):
    from fundusrt.runtime import engines

    monkeypatch.setattr(engines, "_importable", lambda module: module != "openvino")
    with open_engine(bundle, "locator", device="cpu") as engine:
        assert engine.description.startswith("onnxruntime")
        assert engine.description.endswith("(auto: OpenVINO is not installed)")


def test_asking_for_openvino_where_it_is_missing_says_how_to_install_it(bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(EngineError, match=r"OpenVINO is not installed \(pip install 'fundusrt\[openvino\]'\)"):
        open_engine(bundle, "locator", backend="openvino", device="cpu")


def test_the_pipeline_on_openvino_screens_as_on_onnx_runtime(tiny_runs):
    # Two FP32 backends: the same answer as the task reads it (SAME_ANSWER), not the same bits. The drift
    # is printed beside its tolerance, which must stand MARGIN times above it on this CPU.
    images = [render_phantom(21, i, width=640).image for i in range(3)]
    results = {}
    for backend in ("onnxruntime", "openvino"):
        with Pipeline.load(tiny_runs["bundle"], backend=backend, device="cpu", threads=1) as pipeline:
            results[backend] = list(pipeline(images, batch_size=2))
    drift = {key: 0.0 for key in SAME_ANSWER}
    for a, b in zip(results["onnxruntime"], results["openvino"]):
        assert a.ok and b.ok and b.flags == a.flags
        assert (a.vcdr is None) == (b.vcdr is None) and (a.fovea is None) == (b.fovea is None)
        drift["probability"] = max(drift["probability"], abs(b.glaucoma_probability - a.glaucoma_probability))
        for point in ("disc_center", "fovea"):
            if getattr(a, point) is not None:
                moved = float(np.hypot(*np.subtract(getattr(b, point), getattr(a, point))))
                drift["landmark_px"] = max(drift["landmark_px"], moved)
        if a.vcdr is not None:
            drift["vcdr"] = max(drift["vcdr"], abs(b.vcdr - a.vcdr))
    print(f"\nOpenVINO FP32 against ONNX Runtime FP32 on {cpu_description()}:")
    for key, value in drift.items():
        print(f"  {key}: drift {value:.3g}, tolerance {SAME_ANSWER[key]:.3g} ({SAME_ANSWER[key] / max(value, 1e-12):.0f}x)")
    for key, value in drift.items():
        assert MARGIN * value <= SAME_ANSWER[key], f"{key}: {value:.3g} leaves less than {MARGIN}x to {SAME_ANSWER[key]}"
