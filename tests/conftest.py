import cv2
import numpy as np
import pytest

from fundusrt.runtime.bundle import FORMAT, VERSION, EngineEntry, Ensemble, GraphFile, GraphSpec, Manifest, Preprocess
from fundusrt.runtime.normalize import Normalization
from fundusrt.runtime.postprocess import LandmarkPostprocess, SegmentationPostprocess


def graph_spec(inputs, outputs, files: dict, size: int = 64, crop_factor=None, fp32_until=()) -> GraphSpec:
    """A graph's manifest entry for unit tests: ``files`` precision -> (path, sha256)."""
    return GraphSpec(
        tuple(inputs), tuple(outputs), {p: GraphFile(*f) for p, f in files.items()},
        Preprocess(size, Normalization(), crop_factor), tuple(fp32_until),
    )  # fmt: skip


def manifest_of(graphs: dict, *, engines=(), max_batch: int = 64) -> Manifest:
    """A manifest around ``graphs`` with the default post-processing, for unit tests of one graph."""
    return Manifest(
        FORMAT, VERSION, {"fundusrt": "test"}, max_batch, graphs, LandmarkPostprocess.default(),
        SegmentationPostprocess.default(), Ensemble(("m",), 0.5, "mean", None, 0.15, {}), tuple(engines),
    )  # fmt: skip


def engine_entry(graph: str, key: str, path: str, sha: str) -> EngineEntry:
    return EngineEntry(graph, key, path, sha, "fp16", "10.9.0", "9.0", 64, 8, "fp32", {})


@pytest.fixture
def write_rgb(tmp_path):
    """Write an RGB array with OpenCV (which wants BGR) and return the path."""

    def write(name: str, rgb: np.ndarray, *params) -> str:
        path = tmp_path / name
        array = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
        assert cv2.imwrite(str(path), array, list(params))
        return path

    return write


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Three barely trained runs (one epoch on 8 phantoms, tiny sizes) and their exported bundle:
    real graphs of every kind for export and runtime tests, shared by the whole session."""
    from fundusrt.export.bundle_writer import export_bundle
    from fundusrt.runtime.cli import main
    from fundusrt.train.datasets import load_specs
    from fundusrt.train.synth import write_phantom_dataset

    root = tmp_path_factory.mktemp("export")
    write_phantom_dataset(root / "ph", 8, seed=8, width=560)
    write_phantom_dataset(root / "test", 4, seed=9, width=560)
    spec = f"phantom:{root / 'ph'}"
    common = ["--data", spec, "--epochs", "1", "--batch-size", "4", "--val-fraction", "0"]
    assert main(["train", "locate", *common, "--out", str(root / "loc"), "--size", "64", "--unet-base", "8"]) == 0
    assert main(["train", "segment", *common, "--out", str(root / "seg"), "--size", "192", "--limit", "4"]) == 0
    assert main(["train", "classify", *common, "--out", str(root / "cls"), "--size", "32", "--member", "crop_gap"]) == 0
    bundle = export_bundle(
        classifier=root / "cls", segmenter=root / "seg", locator=root / "loc", out=root / "bundle",
        calibration=spec, calibration_count=8, max_batch=16,
    )  # fmt: skip
    return {"root": root, "bundle": bundle, "test": load_specs(f"phantom:{root / 'test'}")}
