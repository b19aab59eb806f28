"""The bundle: what export writes and the runtime loads. The runtime owns this format.

    BUNDLE/manifest.json
    BUNDLE/locator.onnx, locator.fp16.onnx, locator.int8.onnx, segmenter*.onnx, classifier*.onnx
    BUNDLE/engines/<key>/<graph>.engine        TensorRT engines, keyed by what makes them non-portable
    BUNDLE/engines/timing.cache

``manifest.json`` holds the format name and version, the producers' versions, and per graph
its files (relative path, sha256, precision), input/output names and shapes ("batch" for the
dynamic axis), preprocessing (size, view, normalisation, crop factor) and post-processing
constants; the ensemble's members and decision threshold. ``load_bundle`` checks all of it and
refuses a mismatch with one line naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

FORMAT = "fundusrt-bundle"
VERSION = 1
GRAPHS = ("locator", "segmenter", "classifier")
PRECISIONS = ("fp32", "fp16", "int8")


class BundleError(ValueError):
    """A bundle that cannot be used; the message is one line naming the file and the reason."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints, and "batch" for the dynamic axis
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, d: dict) -> TensorSpec:
        return cls(d["name"], tuple(d["shape"]), d.get("dtype", "float32"))

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class GraphSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    files: dict  # precision -> {"path": relative path, "sha256": hex}
    preprocess: dict
    postprocess: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, name: str, d: dict) -> GraphSpec:
        return cls(
            name,
            tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
            dict(d["files"]),
            dict(d.get("preprocess", {})),
            dict(d.get("postprocess", {})),
        )

    def to_dict(self) -> dict:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "files": self.files,
            "preprocess": self.preprocess,
            "postprocess": self.postprocess,
        }


@dataclass(frozen=True)
class Manifest:
    graphs: dict  # name -> GraphSpec
    ensemble: dict  # {"members": [...], "threshold": float}
    producer: dict  # versions of what wrote it
    max_batch: int
    engines: list = field(default_factory=list)  # [{"key", "graph", "path", "sha256", ...}]
    format: str = FORMAT
    version: int = VERSION

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "version": self.version,
            "producer": self.producer,
            "max_batch": self.max_batch,
            "ensemble": self.ensemble,
            "graphs": {name: g.to_dict() for name, g in self.graphs.items()},
            "engines": self.engines,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Manifest:
        return cls(
            graphs={name: GraphSpec.from_dict(name, g) for name, g in d["graphs"].items()},
            ensemble=dict(d.get("ensemble", {})),
            producer=dict(d.get("producer", {})),
            max_batch=int(d["max_batch"]),
            engines=list(d.get("engines", [])),
            format=d["format"],
            version=int(d["version"]),
        )


def write_manifest(root: Path, manifest: Manifest) -> Path:
    path = Path(root) / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: Manifest

    def file(self, graph: str, precision: str = "fp32") -> Path:
        spec = self.graph(graph)
        if precision not in spec.files:
            raise BundleError(f"{self.root}: graph {graph!r} has no {precision} variant (has {', '.join(spec.files)})")
        return self.root / spec.files[precision]["path"]

    def engine(self, graph: str, *, compute_capability: tuple[int, int], trt_version: str, precision: str) -> Path:
        """The engine built for this GPU family and TensorRT version, or a one-line refusal."""
        spec = self.graph(graph)
        wanted = {engine_key(compute_capability, trt_version, precision, f["sha256"]) for f in spec.files.values()}
        candidates = [e for e in self.manifest.engines if e["graph"] == graph]
        for entry in candidates:
            if entry["key"] in wanted:
                return self.root / entry["path"]
        if not candidates:
            raise BundleError(
                f"{self.root}: no TensorRT engine for {graph!r}; run `fundusrt build-engines {self.root}`"
            )
        built = ", ".join(sorted(e["key"] for e in candidates))
        here = f"sm{compute_capability[0]}{compute_capability[1]}-trt{trt_version}-{precision}"
        raise BundleError(
            f"{self.root}: the {graph!r} engines were built elsewhere ({built}); this machine needs {here}"
        )

    def graph(self, name: str) -> GraphSpec:
        try:
            return self.manifest.graphs[name]
        except KeyError:
            raise BundleError(f"{self.root}: no graph {name!r} in manifest.json") from None


def load_bundle(root: Path, *, verify: bool = True) -> Bundle:
    """Read and check a bundle: format, version, every listed file present and unaltered."""
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        raise BundleError(f"{path}: missing (not a fundusrt bundle)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"{path}: unreadable ({e})") from None
    if raw.get("format") != FORMAT:
        raise BundleError(f"{path}: format {raw.get('format')!r} is not {FORMAT!r}")
    if raw.get("version") != VERSION:
        raise BundleError(
            f"{path}: bundle version {raw.get('version')} is not supported (this runtime reads {VERSION})"
        )
    try:
        manifest = Manifest.from_dict(raw)
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{path}: malformed manifest ({e!r})") from None
    if verify:
        entries = [f for g in manifest.graphs.values() for f in g.files.values()] + manifest.engines
        for entry in entries:
            _verify(root, entry)
    return Bundle(root, manifest)


def _verify(root: Path, entry: dict) -> None:
    relative = Path(entry["path"])
    if relative.is_absolute() or ".." in relative.parts:
        raise BundleError(f"{root / 'manifest.json'}: path {entry['path']!r} must be relative and inside the bundle")
    file = root / relative
    if not file.is_file():
        raise BundleError(f"{file}: missing from the bundle")
    if sha256(file) != entry["sha256"]:
        raise BundleError(f"{file}: sha256 does not match manifest.json (altered or corrupt)")


def engine_key(compute_capability: tuple[int, int], trt_version: str, precision: str, onnx_sha256: str) -> str:
    """The folder name under ``engines/``: an engine runs only on the GPU family and TensorRT
    version that built it, so both are in the key, with the precision and the source graph's hash."""
    major, minor = compute_capability
    return f"sm{major}{minor}-trt{trt_version}-{precision}-{onnx_sha256[:12]}"
