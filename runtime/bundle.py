"""The bundle: what export writes and the runtime loads. The runtime owns this format.

    BUNDLE/manifest.json
    BUNDLE/locator.onnx, locator.fp16.onnx, locator.int8.onnx, segmenter*.onnx, classifier*.onnx
    BUNDLE/engines/<key>/<graph>.engine        TensorRT engines, keyed by what makes them non-portable
    BUNDLE/engines/timing.cache

``manifest.json`` is the ``Manifest`` below, field for field: the dataclasses are the schema.
Per graph: its files (relative path and sha256 per precision), tensors ("batch" for the dynamic
axis) and preprocessing; then the locator's post-processing (``landmarks``), the segmenter's
(``segmentation``; both are callables of ``postprocess``) and the ensemble; where ``fundusrt calibrate``
refitted the ensemble's numbers on a site's photographs, the ``calibration`` that says how and from
what (provenance: the runtime reads the numbers from ``ensemble``). Reading is strict: a
missing key, an unknown key or a value of the wrong type is refused in one line naming the key
and the file; nothing is filled in.
Older bundles are still read: version 1 (``_from_version_1``), version 2 (``_from_version_2``:
no class activation maps, no uncertainty threshold), version 3 (``_from_version_3``: no graph names
an FP32 part for BF16) and version 4 (``_from_version_4``: no calibration, no per-channel colour
normalisation).
"""

from __future__ import annotations

import hashlib
import json
import types
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from .constants import FOVEA_SEPARATION, GRAPHS, PRECISIONS
from .glaucoma_risk import VcdrRisk
from .normalize import Normalization
from .postprocess import LandmarkPostprocess, SegmentationPostprocess

FORMAT = "fundusrt-bundle"
VERSION = 5


class BundleError(ValueError):
    """A bundle that cannot be used; the message is one line naming the file and the reason."""


class ManifestError(BundleError):
    """One key of a manifest that is missing, unknown or malformed (``load_bundle`` adds the file)."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------- the schema


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # ints, and "batch" for the dynamic axis
    dtype: str


@dataclass(frozen=True)
class GraphFile:
    path: str  # relative to the bundle
    sha256: str


@dataclass(frozen=True)
class Preprocess:
    """How a graph's inputs are made from a photograph: views of ``size``² pixels, normalised;
    for graphs that take the disc crop, its side in disc diameters (None for full views only)."""

    size: int
    normalization: Normalization
    crop_factor: float | None


@dataclass(frozen=True)
class GraphSpec:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    files: dict[str, GraphFile]  # precision -> file
    preprocess: Preprocess
    # Where a backend computes the FP32 file in BF16 (OpenVINO): the tensors up to which the graph stays
    # FP32 (everything that computes them), the rest BF16. Empty: BF16 throughout, or FP32 throughout
    # for a graph BF16 moves beyond its tolerance (``constants.KEEPS_FP32``).
    fp32_until: tuple[str, ...]


@dataclass(frozen=True)
class Ensemble:
    members: tuple[str, ...]  # the classifier's ``members`` output, column by column
    threshold: float  # glaucoma when the glaucoma probability reaches it
    merge: str  # how the members' probabilities become the ensemble's, in words
    vcdr: VcdrRisk | None  # the vCDR's model and its share of the glaucoma probability
    # "uncertain" when the members' probabilities spread (standard deviation) reaches this; None: not judged
    uncertainty: float | None
    # member -> the view ("full" or "crop") of its class activation map, in the ``heatmaps`` output's order
    heatmaps: dict[str, str]


@dataclass(frozen=True)
class EngineEntry:
    """A TensorRT engine built for one GPU family and TensorRT version (see ``engine_key``)."""

    graph: str
    key: str
    path: str
    sha256: str
    precision: str
    tensorrt: str
    compute_capability: str
    max_batch: int
    opt_batch: int
    onnx: str  # the precision of the ONNX graph it was built from
    comparison: dict[str, Any]  # its outputs against ONNX Runtime's when it was built


@dataclass(frozen=True)
class OperatingPoint:
    """The ensemble's numbers that a site's calibration sets, and what they did on its photographs."""

    threshold: float  # ``Ensemble.threshold``
    vcdr_weight: float | None  # ``Ensemble.vcdr.weight``; None: the bundle has no vCDR model
    uncertainty: float | None  # ``Ensemble.uncertainty``
    auc: float  # of the glaucoma probability, on the site's photographs
    sensitivity: float  # at ``threshold``
    specificity: float
    uncertain: int | None  # photographs whose members' spread reaches ``uncertainty``


@dataclass(frozen=True)
class Calibration:
    """How ``fundusrt calibrate`` refitted ``ensemble`` on a site's labelled photographs (provenance)."""

    data: str  # the data spec of the site's photographs
    date: str  # ISO 8601, UTC
    from_manifest: str  # sha256 of the manifest.json it was calibrated from
    precision: str  # the graphs' precision the photographs were screened at
    photographs: int  # screened and labelled: what the numbers were fitted on
    glaucoma: int  # of them
    without_vcdr: int  # of them, no disc segmented: the ensemble answered alone
    failed: int  # not screened (unreadable); left out
    specificity: float  # the specificity the threshold was set at
    uncertain_share: float | None  # the share of photographs the uncertainty threshold was set to flag; None: kept
    method: str  # in words
    before: OperatingPoint
    after: OperatingPoint


@dataclass(frozen=True)
class Manifest:
    format: str
    version: int
    producer: dict[str, Any]  # versions of what wrote it; provenance, never read
    max_batch: int
    graphs: dict[str, GraphSpec]
    landmarks: LandmarkPostprocess
    segmentation: SegmentationPostprocess
    ensemble: Ensemble
    engines: tuple[EngineEntry, ...] = ()
    calibration: Calibration | None = None  # a site's recalibration of ``ensemble``; None: as exported

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Manifest:
        """Strictly: every key present, none unknown, each of its type; older versions upgraded first."""
        if isinstance(d, dict) and d.get("version") == 1:
            d = _from_version_1(d)
        if isinstance(d, dict) and d.get("version") == 2:
            d = _from_version_2(d)
        if isinstance(d, dict) and d.get("version") == 3:
            d = _from_version_3(d)
        if isinstance(d, dict) and d.get("version") == 4:
            d = _from_version_4(d)
        manifest = _parse(cls, d, "manifest")
        _check(manifest)
        return manifest


def _check(m: Manifest) -> None:
    """What the types cannot say: the three graphs, an FP32 file each, one disc crop for two graphs."""
    for name in GRAPHS:
        if name not in m.graphs:
            raise ManifestError(f"key 'manifest.graphs.{name}' is missing")
    for name, spec in m.graphs.items():
        if name not in GRAPHS:
            raise ManifestError(f"key 'manifest.graphs.{name}' is unknown (graphs: {', '.join(GRAPHS)})")
        for precision in spec.files:
            if precision not in PRECISIONS:
                known = ", ".join(PRECISIONS)
                raise ManifestError(f"key 'manifest.graphs.{name}.files.{precision}' is not a precision ({known})")
        if "fp32" not in spec.files:
            raise ManifestError(f"key 'manifest.graphs.{name}.files.fp32' is missing")
    if m.graphs["locator"].preprocess.crop_factor is not None:
        raise ManifestError("key 'manifest.graphs.locator.preprocess.crop_factor' must be null (full views only)")
    # The classifier's disc crop is the segmenter's final crop, resized: one factor for both.
    factors = {m.graphs[g].preprocess.crop_factor for g in ("segmenter", "classifier")}
    if None in factors or len(factors) != 1:
        raise ManifestError(
            "keys 'manifest.graphs.segmenter.preprocess.crop_factor' and "
            "'manifest.graphs.classifier.preprocess.crop_factor' "
            f"must be the same number, got {sorted(factors, key=str)}"
        )
    outputs = [t.name for t in m.graphs["classifier"].outputs]
    if bool(m.ensemble.heatmaps) != ("heatmaps" in outputs):
        raise ManifestError(
            "key 'manifest.ensemble.heatmaps' must name the members of the classifier's 'heatmaps' output "
            f"(outputs: {', '.join(outputs)}; heatmaps: {dict(m.ensemble.heatmaps)})"
        )
    for name, view in m.ensemble.heatmaps.items():
        if name not in m.ensemble.members:
            raise ManifestError(f"key 'manifest.ensemble.heatmaps.{name}' is not a member")
        if view not in ("full", "crop"):
            raise ManifestError(f"key 'manifest.ensemble.heatmaps.{name}' must be 'full' or 'crop', got {view!r}")
    if m.ensemble.uncertainty is not None and not m.ensemble.uncertainty > 0.0:
        raise ManifestError(f"key 'manifest.ensemble.uncertainty' must be positive, got {m.ensemble.uncertainty}")
    if m.ensemble.vcdr is not None and not 0.0 <= m.ensemble.vcdr.weight <= 1.0:
        weight = m.ensemble.vcdr.weight
        raise ManifestError(f"key 'manifest.ensemble.vcdr.weight' must lie between 0 and 1, got {weight}")


def _parse(kind, value, where: str):
    """``value`` (parsed JSON) as an instance of the type ``kind``, or a ManifestError naming ``where``."""
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _parse(option, value, where)
            except ManifestError as e:
                errors.append(e)
        raise errors[0]
    if is_dataclass(kind):
        if not isinstance(value, dict):
            raise ManifestError(f"key '{where}' must be an object, got {value!r}")
        hints, names = get_type_hints(kind), [f.name for f in fields(kind)]
        for name in names:
            if name not in value:
                raise ManifestError(f"key '{where}.{name}' is missing")
        for name in value:
            if name not in names:
                raise ManifestError(f"key '{where}.{name}' is unknown")
        return kind(**{name: _parse(hints[name], value[name], f"{where}.{name}") for name in names})
    if origin is dict:
        if not isinstance(value, dict):
            raise ManifestError(f"key '{where}' must be an object, got {value!r}")
        return {k: _parse(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise ManifestError(f"key '{where}' must be a list, got {value!r}")
        each = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        if len(each) != len(value):
            raise ManifestError(f"key '{where}' must hold {len(each)} items, got {len(value)}")
        return tuple(_parse(k, v, f"{where}[{i}]") for i, (k, v) in enumerate(zip(each, value)))
    if kind is Any:
        return value
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str, bool) and type(value) is kind:
        return value
    raise ManifestError(f"key '{where}' must be {getattr(kind, '__name__', kind)}, got {value!r}")


_CROP_GRAPHS_V1 = ("segmenter", "classifier")  # the version-1 graphs with a disc-crop input


def _from_version_4(d: dict) -> dict:
    """A version-4 manifest in version 5's form: no site calibrated it, and no graph normalises each
    colour channel over the field of view (``Normalization.per_channel``)."""
    d = {**d, "version": 5, "calibration": None}
    graphs = d.get("graphs")
    if isinstance(graphs, dict) and all(isinstance(g, dict) for g in graphs.values()):
        d["graphs"] = {name: _without_per_channel(g) for name, g in graphs.items()}
    return d


def _without_per_channel(graph: dict) -> dict:
    normalization = graph.get("preprocess", {}).get("normalization")
    if not isinstance(normalization, dict):
        return graph  # the strict parse names what is wrong
    preprocess = {**graph["preprocess"], "normalization": {**normalization, "per_channel": False}}
    return {**graph, "preprocess": preprocess}


def _from_version_3(d: dict) -> dict:
    """A version-3 manifest in version 4's form: no graph names an FP32 part, so under BF16 the
    classifier runs FP32 throughout (``constants.KEEPS_FP32``)."""
    graphs = d.get("graphs")
    if not isinstance(graphs, dict) or not all(isinstance(g, dict) for g in graphs.values()):
        return d  # the strict parse names what is wrong
    return {**d, "version": 4, "graphs": {name: {**g, "fp32_until": []} for name, g in graphs.items()}}


def _from_version_2(d: dict) -> dict:
    """A version-2 manifest in version 3's form: its classifier has no class activation maps and it
    sets no uncertainty threshold (records say ``uncertain: null``)."""
    ensemble = d.get("ensemble")
    if not isinstance(ensemble, dict):
        return d  # the strict parse names what is wrong
    return {**d, "version": 3, "ensemble": {**ensemble, "uncertainty": None, "heatmaps": {}}}


def _from_version_1(d: dict) -> dict:
    """A version-1 manifest in version 2's form, with the values the version-1 runtime used: its
    preprocessing carried unused keys (view, views, gamma) and a crop factor per graph, of which it
    read the segmenter's (default 2.0) for both crops; thresholds defaulted to 0.5; the fovea's
    distance range was a constant of the code."""
    try:
        graphs = d["graphs"]
        ensemble = d.get("ensemble", {})
        locator = graphs["locator"].get("postprocess", {})
        crop_factor = graphs["segmenter"]["preprocess"].get("crop_factor", 2.0)
        out = {
            "format": d["format"],
            "version": 2,
            "producer": d.get("producer", {}),
            "max_batch": d["max_batch"],
            "graphs": {
                name: {
                    "inputs": [{"dtype": "float32", **t} for t in g["inputs"]],
                    "outputs": [{"dtype": "float32", **t} for t in g["outputs"]],
                    "files": {p: {"path": f["path"], "sha256": f["sha256"]} for p, f in g["files"].items()},
                    "preprocess": {
                        "size": g["preprocess"]["size"],
                        "normalization": {"per_image": False, **g["preprocess"]["normalization"]},
                        "crop_factor": crop_factor if name in _CROP_GRAPHS_V1 else None,
                    },
                }
                for name, g in graphs.items()
            },
            "landmarks": {
                **{k: locator[k] for k in ("log_sigma", "peak_min_distance", "peak_threshold", "fovea_distance_dd")},
                "fovea_separation": list(FOVEA_SEPARATION),
            },
            "segmentation": {"threshold": graphs["segmenter"].get("postprocess", {}).get("threshold", 0.5)},
            "ensemble": {
                "members": ensemble.get("members", []),
                "threshold": ensemble.get("threshold", 0.5),
                "merge": ensemble.get("merge", "mean of member probabilities"),
                "vcdr": ensemble.get("vcdr"),
            },
            "engines": d.get("engines", []),
        }
    except (KeyError, TypeError, AttributeError) as e:
        raise ManifestError(f"version-1 manifest without key {e}") from None
    return out


def write_manifest(root: Path, manifest: Manifest) -> Path:
    path = Path(root) / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------- the bundle


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: Manifest = field(repr=False)

    def file(self, graph: str, precision: str = "fp32") -> Path:
        spec = self.graph(graph)
        if precision not in spec.files:
            raise BundleError(f"{self.root}: graph {graph!r} has no {precision} variant (has {', '.join(spec.files)})")
        return self.root / spec.files[precision].path

    def engine(self, graph: str, *, compute_capability: tuple[int, int], trt_version: str, precision: str) -> Path:
        """The engine built for this GPU family and TensorRT version, or a one-line refusal."""
        spec = self.graph(graph)
        wanted = {engine_key(compute_capability, trt_version, precision, f.sha256) for f in spec.files.values()}
        candidates = [e for e in self.manifest.engines if e.graph == graph]
        for entry in candidates:
            if entry.key in wanted:
                return self.root / entry.path
        if not candidates:
            raise BundleError(
                f"{self.root}: no TensorRT engine for {graph!r}; run `fundusrt build-engines {self.root}`"
            )
        built = ", ".join(sorted(e.key for e in candidates))
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
    """Read and check a bundle: format, version, every key, every listed file present and unaltered."""
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        raise BundleError(f"{path}: missing (not a fundusrt bundle)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"{path}: unreadable ({e})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BundleError(f"{path}: format {raw.get('format') if isinstance(raw, dict) else raw!r} is not {FORMAT!r}")
    if raw.get("version") not in range(1, VERSION + 1):
        raise BundleError(
            f"{path}: bundle version {raw.get('version')} is not supported (this runtime reads 1 to {VERSION})"
        )
    try:
        manifest = Manifest.from_dict(raw)
    except ManifestError as e:
        raise BundleError(f"{path}: {e}") from None
    if verify:
        entries = [f for g in manifest.graphs.values() for f in g.files.values()] + list(manifest.engines)
        for entry in entries:
            _verify(root, entry)
    return Bundle(root, manifest)


def _verify(root: Path, entry: GraphFile | EngineEntry) -> None:
    relative = Path(entry.path)
    if relative.is_absolute() or ".." in relative.parts:
        raise BundleError(f"{root / 'manifest.json'}: path {entry.path!r} must be relative and inside the bundle")
    file = root / relative
    if not file.is_file():
        raise BundleError(f"{file}: missing from the bundle")
    if sha256(file) != entry.sha256:
        raise BundleError(f"{file}: sha256 does not match manifest.json (altered or corrupt)")


def engine_key(compute_capability: tuple[int, int], trt_version: str, precision: str, onnx_sha256: str) -> str:
    """The folder name under ``engines/``: an engine runs only on the GPU family and TensorRT
    version that built it, so both are in the key, with the precision and the source graph's hash."""
    major, minor = compute_capability
    return f"sm{major}{minor}-trt{trt_version}-{precision}-{onnx_sha256[:12]}"
