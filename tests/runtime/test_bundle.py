import json
import shutil

import pytest

from fundusrt.runtime.bundle import (
    BundleError,
    GraphSpec,
    Manifest,
    TensorSpec,
    engine_key,
    load_bundle,
    sha256,
    write_manifest,
)


def _bundle(root):
    root.mkdir()
    files = {}
    for precision in ("fp32", "fp16"):
        path = root / f"locator.{precision}.onnx"
        path.write_bytes(precision.encode() * 100)
        files[precision] = {"path": path.name, "sha256": sha256(path)}
    engine = root / "engines" / "sm86-trt10.9.0-fp16-abc" / "locator.engine"
    engine.parent.mkdir(parents=True)
    engine.write_bytes(b"engine")
    spec = GraphSpec(
        "locator",
        (TensorSpec("image", ("batch", 3, 64, 64)),),
        (TensorSpec("distance_map", ("batch", 1, 64, 64)),),
        files,
        {"size": 64, "normalization": {"mean": [0, 0, 0], "std": [1, 1, 1], "per_image": True}},
        {"gamma": 7.0},
    )
    key = engine_key((8, 6), "10.9.0", "fp16", files["fp32"]["sha256"])
    engines = [{"graph": "locator", "key": key, "path": f"engines/{key}/locator.engine", "sha256": sha256(engine)}]
    engine.parent.rename(root / "engines" / key)
    write_manifest(
        root, Manifest({"locator": spec}, {"members": [], "threshold": 0.5}, {"fundusrt": "test"}, 64, engines)
    )
    return root


def test_loads_and_survives_a_move(tmp_path):
    bundle = load_bundle(_bundle(tmp_path / "b"))
    assert bundle.graph("locator").preprocess["size"] == 64
    assert bundle.graph("locator").inputs[0].shape == ("batch", 3, 64, 64)
    moved = tmp_path / "elsewhere" / "b2"
    shutil.move(tmp_path / "b", moved)
    assert load_bundle(moved).file("locator", "fp16") == moved / "locator.fp16.onnx"
    assert str(tmp_path) not in (moved / "manifest.json").read_text()  # no absolute paths inside


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
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(BundleError, match="bundle version 99 is not supported"):
        load_bundle(root)
    (root / "manifest.json").write_text(json.dumps({**manifest, "format": "other"}))
    with pytest.raises(BundleError, match="format 'other'"):
        load_bundle(root)
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tmp_path / "nowhere")


def test_paths_must_stay_inside(tmp_path):
    root = _bundle(tmp_path / "b")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["graphs"]["locator"]["files"]["fp32"]["path"] = "../outside.onnx"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="must be relative and inside"):
        load_bundle(root)


def test_engines_are_matched_to_this_machine(tmp_path):
    bundle = load_bundle(_bundle(tmp_path / "b"))
    path = bundle.engine("locator", compute_capability=(8, 6), trt_version="10.9.0", precision="fp16")
    assert path.name == "locator.engine"
    with pytest.raises(BundleError, match="built elsewhere .*this machine needs sm90-trt10.9.0-fp16"):
        bundle.engine("locator", compute_capability=(9, 0), trt_version="10.9.0", precision="fp16")
    with pytest.raises(BundleError, match="no graph 'segmenter'"):
        bundle.engine("segmenter", compute_capability=(9, 0), trt_version="10.9.0", precision="fp16")


def test_engine_key():
    assert engine_key((9, 0), "10.9.0", "fp16", "ab" * 32) == "sm90-trt10.9.0-fp16-abababababab"
