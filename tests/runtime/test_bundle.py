import json
import shutil
from pathlib import Path

import pytest
from conftest import engine_entry, graph_spec, manifest_of

from fundusrt.runtime.bundle import (
    VERSION,
    BundleError,
    Manifest,
    ManifestError,
    TensorSpec,
    engine_key,
    load_bundle,
    sha256,
    write_manifest,
)
from fundusrt.runtime.glaucoma_risk import VcdrRisk
from fundusrt.runtime.normalize import Normalization
from fundusrt.runtime.postprocess import LandmarkPostprocess, SegmentationPostprocess

VERSION_1 = Path(__file__).parent.parent / "fixtures" / "manifest_v1.json"  # as export wrote it before version 2


def _bundle(root):
    root.mkdir()
    graphs = {}
    for graph, crop_factor in (("locator", None), ("segmenter", 2.0), ("classifier", 2.0)):
        files = {}
        for precision in ("fp32", "fp16"):
            path = root / f"{graph}.{precision}.onnx"
            path.write_bytes((graph + precision).encode() * 100)
            files[precision] = (path.name, sha256(path))
        tensor = TensorSpec("image", ("batch", 3, 64, 64), "float32")
        graphs[graph] = graph_spec([tensor], [tensor], files, crop_factor=crop_factor)
    engine = root / "engines" / "sm86-trt10.9.0-fp16-abc" / "locator.engine"
    engine.parent.mkdir(parents=True)
    engine.write_bytes(b"engine")
    key = engine_key((8, 6), "10.9.0", "fp16", graphs["locator"].files["fp32"].sha256)
    engines = [engine_entry("locator", key, f"engines/{key}/locator.engine", sha256(engine))]
    engine.parent.rename(root / "engines" / key)
    write_manifest(root, manifest_of(graphs, engines=engines))
    return root


def _raw(root) -> dict:
    return json.loads((root / "manifest.json").read_text())


def _write(root, raw: dict) -> None:
    (root / "manifest.json").write_text(json.dumps(raw))


def test_loads_and_survives_a_move(tmp_path):
    bundle = load_bundle(_bundle(tmp_path / "b"))
    assert bundle.graph("locator").preprocess.size == 64
    assert bundle.graph("locator").inputs[0].shape == ("batch", 3, 64, 64)
    moved = tmp_path / "elsewhere" / "b2"
    shutil.move(tmp_path / "b", moved)
    assert load_bundle(moved).file("locator", "fp16") == moved / "locator.fp16.onnx"
    assert str(tmp_path) not in (moved / "manifest.json").read_text()  # no absolute paths inside


def test_manifest_round_trips_through_json(tmp_path):
    manifest = load_bundle(_bundle(tmp_path / "b")).manifest
    assert Manifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest


@pytest.mark.parametrize(
    "path",
    [
        ("max_batch",),
        ("landmarks", "log_sigma"),
        ("landmarks", "fovea_distance_dd"),
        ("segmentation", "threshold"),
        ("ensemble", "threshold"),
        ("ensemble", "vcdr"),
        ("graphs", "segmenter"),
        ("graphs", "segmenter", "preprocess", "crop_factor"),
        ("graphs", "classifier", "preprocess", "normalization", "per_image"),
        ("graphs", "locator", "files", "fp32"),
        ("graphs", "locator", "inputs", 0, "dtype"),
    ],
)
def test_a_missing_key_is_refused_by_name(tmp_path, path):
    root = _bundle(tmp_path / "b")
    raw = _raw(root)
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    _write(root, raw)
    named = ".".join(str(k) for k in path).replace(".0.", "[0].")
    with pytest.raises(BundleError) as refused:
        load_bundle(root)
    message = str(refused.value)
    assert message.startswith(str(root / "manifest.json")) and f"'manifest.{named}'" in message, message
    assert "\n" not in message


def test_unknown_keys_and_wrong_types_are_refused_by_name(tmp_path):
    root = _bundle(tmp_path / "b")
    raw = _raw(root)
    raw["segmentation"]["smoothing"] = 3
    _write(root, raw)
    with pytest.raises(BundleError, match=r"manifest\.json: key 'manifest\.segmentation\.smoothing' is unknown"):
        load_bundle(root)
    raw = _raw(_bundle(tmp_path / "c"))
    raw["graphs"]["segmenter"]["preprocess"]["size"] = "192"
    _write(tmp_path / "c", raw)
    with pytest.raises(BundleError, match=r"'manifest\.graphs\.segmenter\.preprocess\.size' must be int, got '192'"):
        load_bundle(tmp_path / "c")


def test_the_two_disc_crops_must_agree(tmp_path):
    root = _bundle(tmp_path / "b")
    raw = _raw(root)
    raw["graphs"]["classifier"]["preprocess"]["crop_factor"] = 2.5
    _write(root, raw)
    with pytest.raises(BundleError, match="crop_factor' must be the same number"):
        load_bundle(root)


def test_version_1_is_read_with_the_values_its_runtime_used():
    raw = json.loads(VERSION_1.read_text())
    assert raw["version"] == 1 and "view" in raw["graphs"]["locator"]["preprocess"]
    m = Manifest.from_dict(raw)
    assert m.version == VERSION and m.max_batch == 16
    assert all(g.fp32_until == () for g in m.graphs.values())
    assert m.ensemble.uncertainty is None and m.ensemble.heatmaps == {}
    assert m.landmarks == LandmarkPostprocess.default() and m.segmentation == SegmentationPostprocess(0.5)
    loc, seg, cls = (m.graphs[g].preprocess for g in ("locator", "segmenter", "classifier"))
    assert (loc.size, seg.size, cls.size) == (96, 192, 64)
    assert loc.normalization.per_image and seg.normalization == Normalization()
    assert loc.crop_factor is None and seg.crop_factor == cls.crop_factor == 2.0
    assert m.ensemble.members == ("full_gap", "crop_gap", "crop_2gap", "crop_3gap", "crop_cc")
    assert m.ensemble.threshold == 0.5 and m.ensemble.vcdr == VcdrRisk(-9.861690477172298, 17.968275925066187, 0.5)
    assert m.graphs["classifier"].files["int8"].path == "classifier.int8.onnx"
    # and a version-1 bundle that lacked what its runtime defaulted still reads the same defaults
    del raw["graphs"]["segmenter"]["postprocess"]["threshold"], raw["ensemble"]["threshold"]
    assert Manifest.from_dict(raw) == m


def test_version_2_is_read_without_heatmaps_or_an_uncertainty_threshold(tmp_path):
    raw = _raw(_bundle(tmp_path / "b"))
    del raw["ensemble"]["uncertainty"], raw["ensemble"]["heatmaps"]
    m = Manifest.from_dict({**raw, "version": 2})
    assert m.version == VERSION and m.ensemble.uncertainty is None and m.ensemble.heatmaps == {}
    with pytest.raises(ManifestError, match=r"'manifest\.ensemble\.uncertainty' is missing"):
        Manifest.from_dict(raw)  # version 3 must say it


def test_version_3_is_read_with_no_fp32_part_for_bf16(tmp_path):
    raw = _raw(_bundle(tmp_path / "b"))
    for graph in raw["graphs"].values():
        del graph["fp32_until"]
    m = Manifest.from_dict({**raw, "version": 3})
    assert m.version == VERSION and all(g.fp32_until == () for g in m.graphs.values())
    with pytest.raises(ManifestError, match=r"'manifest\.graphs\.locator\.fp32_until' is missing"):
        Manifest.from_dict(raw)  # version 4 must say it


def test_version_4_is_read_as_never_calibrated(tmp_path):
    raw = _raw(_bundle(tmp_path / "b"))
    assert raw["calibration"] is None
    del raw["calibration"]
    m = Manifest.from_dict({**raw, "version": 4})
    assert m.version == VERSION and m.calibration is None
    with pytest.raises(ManifestError, match=r"'manifest\.calibration' is missing"):
        Manifest.from_dict(raw)  # version 5 must say it


def test_a_calibration_record_is_read_back_strictly(tmp_path):
    raw = _raw(_bundle(tmp_path / "b"))
    point = {"threshold": 0.4, "vcdr_weight": None, "uncertainty": 0.1, "auc": 0.8, "sensitivity": 0.7,
             "specificity": 0.85, "uncertain": 3}  # fmt: skip
    raw["calibration"] = {
        "data": "csv:site.csv", "date": "2025-01-01T00:00:00+00:00", "from_manifest": "ab", "precision": "fp32",
        "photographs": 40, "glaucoma": 12, "without_vcdr": 0, "failed": 1, "specificity": 0.85,
        "uncertain_share": 0.1, "method": "words", "before": point, "after": {**point, "threshold": 0.5},
    }  # fmt: skip
    m = Manifest.from_dict(raw)
    assert m.calibration.after.threshold == 0.5 and m.calibration.before.vcdr_weight is None
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    raw["calibration"]["after"]["uncertain"] = "3"
    with pytest.raises(ManifestError, match=r"'manifest\.calibration\.after\.uncertain' must be int"):
        Manifest.from_dict(raw)


def test_heatmaps_must_name_members_of_the_heatmaps_output(tmp_path):
    raw = _raw(_bundle(tmp_path / "b"))
    raw["ensemble"]["heatmaps"] = {"m": "crop"}  # but the classifier has no "heatmaps" output
    with pytest.raises(ManifestError, match="must name the members of the classifier's 'heatmaps' output"):
        Manifest.from_dict(raw)
    raw["graphs"]["classifier"]["outputs"].append({"name": "heatmaps", "shape": ["batch", 1, 2, 2], "dtype": "float32"})
    assert Manifest.from_dict(raw).ensemble.heatmaps == {"m": "crop"}
    raw["ensemble"]["heatmaps"] = {"other": "crop"}
    with pytest.raises(ManifestError, match=r"heatmaps\.other' is not a member"):
        Manifest.from_dict(raw)
    raw["ensemble"]["heatmaps"] = {"m": "side"}
    with pytest.raises(ManifestError, match="must be 'full' or 'crop'"):
        Manifest.from_dict(raw)


def test_version_1_without_what_its_runtime_needed_is_refused():
    raw = json.loads(VERSION_1.read_text())
    del raw["graphs"]["locator"]["postprocess"]["log_sigma"]
    with pytest.raises(ManifestError, match="log_sigma"):
        Manifest.from_dict(raw)


def test_tampering_is_refused_by_name(tmp_path):
    root = _bundle(tmp_path / "b")
    (root / "locator.fp16.onnx").write_bytes(b"changed")
    with pytest.raises(BundleError, match=r"locator\.fp16\.onnx: sha256 does not match"):
        load_bundle(root)


def test_missing_file_unknown_version_and_format(tmp_path):
    root = _bundle(tmp_path / "b")
    (root / "locator.fp32.onnx").unlink()
    with pytest.raises(BundleError, match=r"locator\.fp32\.onnx: missing"):
        load_bundle(root)
    root = _bundle(tmp_path / "c")
    manifest = _raw(root)
    _write(root, {**manifest, "version": 99})
    with pytest.raises(BundleError, match="bundle version 99 is not supported"):
        load_bundle(root)
    _write(root, {**manifest, "format": "other"})
    with pytest.raises(BundleError, match="format 'other'"):
        load_bundle(root)
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tmp_path / "nowhere")


def test_paths_must_stay_inside(tmp_path):
    root = _bundle(tmp_path / "b")
    manifest = _raw(root)
    manifest["graphs"]["locator"]["files"]["fp32"]["path"] = "../outside.onnx"
    _write(root, manifest)
    with pytest.raises(BundleError, match="must be relative and inside"):
        load_bundle(root)


def test_engines_are_matched_to_this_machine(tmp_path):
    bundle = load_bundle(_bundle(tmp_path / "b"))
    path = bundle.engine("locator", compute_capability=(8, 6), trt_version="10.9.0", precision="fp16")
    assert path.name == "locator.engine"
    with pytest.raises(BundleError, match="built elsewhere .*this machine needs sm90-trt10.9.0-fp16"):
        bundle.engine("locator", compute_capability=(9, 0), trt_version="10.9.0", precision="fp16")
    with pytest.raises(BundleError, match="no TensorRT engine for 'segmenter'"):
        bundle.engine("segmenter", compute_capability=(9, 0), trt_version="10.9.0", precision="fp16")


def test_engine_key():
    assert engine_key((9, 0), "10.9.0", "fp16", "ab" * 32) == "sm90-trt10.9.0-fp16-abababababab"
