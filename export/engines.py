"""``fundusrt build-engines``: TensorRT engines for a bundle, through the TensorRT Python API.

- TensorRT 10: the FP32 graph with ``BuilderFlag.FP16`` (weak typing) for FP16 engines.
- TensorRT 11 removed the FP16 flag and weak typing: a strongly typed network built from the
  bundle's FP16 graph is the FP16 engine (a strongly typed build of the FP32 graph would be FP32).
- One optimisation profile per engine: batch (1, opt, max) on every input.
- The timing cache lives in ``engines/timing.cache`` and is reused by later builds.
- Engines go to ``engines/<sm..-trt..-precision-onnxhash>/<graph>.engine`` and into the manifest.
- After each build, Polygraphy compares the engine with ONNX Runtime FP32 (FP16-sized
  tolerances) and reports mask agreement and peak distance.

Nothing here has run on a machine with TensorRT: none could be had (see README). The parts
that need no GPU (profiles, keys, graph choice, manifest entries) are unit-tested.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from fundusrt.runtime.bundle import EngineEntry, engine_key, load_bundle, sha256, write_manifest
from fundusrt.runtime.engines.base import EngineError
from fundusrt.runtime.engines.cuda import compute_capability as device_capability

FP16_TOLERANCE = {"atol": 1e-3, "rtol": 1e-3}  # NVIDIA's guidance for FP16; Polygraphy's 1e-5 default is FP32's


class EngineBuildUnavailable(RuntimeError):
    """TensorRT or a CUDA GPU is missing: one line saying which."""


def profile_shapes(graph_spec, *, max_batch: int, opt_batch: int) -> dict[str, tuple[tuple, tuple, tuple]]:
    """(min, opt, max) shapes per input: the batch axis varies, the others are as exported."""
    if not 1 <= opt_batch <= max_batch:
        raise ValueError(f"need 1 <= opt batch ({opt_batch}) <= max batch ({max_batch})")
    shapes = {}
    for tensor in graph_spec.inputs:
        rest = tuple(int(d) for d in tensor.shape[1:])
        shapes[tensor.name] = ((1, *rest), (opt_batch, *rest), (max_batch, *rest))
    return shapes


def build_plan(trt_major: int, precision: str) -> tuple[str, bool, bool]:
    """(ONNX variant to parse, strongly typed network?, set BuilderFlag.FP16?)."""
    if precision == "fp32":
        return "fp32", trt_major >= 11, False
    if trt_major >= 11:
        return "fp16", True, False
    return "fp32", False, True


def tensorrt_builder_available() -> bool:
    """True where the full TensorRT builder imports (not the lean runtime wheel, not a stub)."""
    try:
        return hasattr(_import_tensorrt(), "Builder")
    except EngineBuildUnavailable:
        return False


def _import_tensorrt():
    from fundusrt.runtime.engines.tensorrt_engine import import_tensorrt

    try:
        trt = import_tensorrt()
    except EngineError as e:
        raise EngineBuildUnavailable(str(e)) from None
    if not hasattr(trt, "Builder"):
        raise EngineBuildUnavailable("the installed tensorrt package has no builder (only the lean runtime, or a stub)")
    return trt


def compute_capability() -> tuple[int, int]:
    try:
        return device_capability()
    except EngineError as e:  # no cuda-python, no GPU: one line, as for a missing TensorRT
        raise EngineBuildUnavailable(str(e)) from None


def build_engines(
    bundle_root: Path,
    *,
    precision: str = "fp16",
    max_batch: int | None = None,
    opt_batch: int = 8,
    workspace_gib: float = 4.0,
) -> list[EngineEntry]:
    trt = _import_tensorrt()
    cc = compute_capability()
    bundle = load_bundle(bundle_root)
    manifest = bundle.manifest
    max_batch = max_batch or manifest.max_batch
    major = int(trt.__version__.split(".")[0])
    engines_dir = Path(bundle_root) / "engines"
    engines_dir.mkdir(exist_ok=True)
    cache_path = engines_dir / "timing.cache"
    logger = trt.Logger(trt.Logger.WARNING)
    built = []
    for name, spec in manifest.graphs.items():
        variant, strongly_typed, fp16_flag = build_plan(major, precision)
        onnx_path = bundle.file(name, variant)
        key = engine_key(cc, trt.__version__, precision, spec.files[variant].sha256)
        target = engines_dir / key / f"{name}.engine"
        target.parent.mkdir(parents=True, exist_ok=True)
        shapes = profile_shapes(spec, max_batch=max_batch, opt_batch=min(opt_batch, max_batch))
        data = _build_one(trt, logger, onnx_path, shapes, strongly_typed, fp16_flag, workspace_gib, cache_path)
        target.write_bytes(data)
        comparison = compare_with_onnxruntime(target, bundle.file(name, "fp32"), spec, batch=min(opt_batch, max_batch))
        built.append(EngineEntry(
            graph=name, key=key, path=target.relative_to(bundle_root).as_posix(), sha256=sha256(target),
            precision=precision, tensorrt=trt.__version__, compute_capability=f"{cc[0]}.{cc[1]}",
            max_batch=max_batch, opt_batch=opt_batch, onnx=variant, comparison=comparison,
        ))  # fmt: skip
    rebuilt = {(b.graph, b.key) for b in built}
    kept = tuple(e for e in manifest.engines if (e.graph, e.key) not in rebuilt)
    write_manifest(bundle_root, replace(manifest, engines=kept + tuple(built)))
    return built


def _build_one(trt, logger, onnx_path, shapes, strongly_typed, fp16_flag, workspace_gib, cache_path) -> bytes:
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed:
        flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is not None:  # TensorRT 11 networks are always strongly typed
            flags |= 1 << int(flag)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    if fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT could not build an engine (see its log above)")
    cache_path.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return bytes(memoryview(serialized))


def compare_with_onnxruntime(engine_path: Path, onnx_fp32: Path, spec, *, batch: int) -> dict:
    """Polygraphy: the engine against ONNX Runtime FP32 on the same random inputs, FP16 tolerances,
    plus the share of first outputs on the same side of 0.5 (mask pixels of the segmenter, decisions
    of the classifier)."""
    from polygraphy.backend.common import BytesFromPath
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner
    from polygraphy.comparator import Comparator, CompareFunc, DataLoader

    shapes = {t.name: (batch, *[int(d) for d in t.shape[1:]]) for t in spec.inputs}
    loader = DataLoader(input_metadata=_metadata(shapes), iterations=2, seed=0)
    runners = [
        TrtRunner(EngineFromBytes(BytesFromPath(str(engine_path)))),
        OnnxrtRunner(SessionFromOnnx(str(onnx_fp32), providers=["CPUExecutionProvider"])),
    ]
    results = Comparator.run(runners, data_loader=loader)
    accuracy = Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(**FP16_TOLERANCE))
    report = {"polygraphy_pass": bool(accuracy), **FP16_TOLERANCE}
    trt_out, ort_out = (results[r.name][0] for r in runners)
    first = spec.outputs[0].name
    a, b = np.asarray(trt_out[first]), np.asarray(ort_out[first])
    report["max_abs_diff"] = float(np.abs(a - b).max())
    report["agreement_at_half"] = float(np.mean((a > 0.5) == (b > 0.5)))
    return report


def _metadata(shapes: dict):
    from polygraphy.common import TensorMetadata

    meta = TensorMetadata()
    for name, shape in shapes.items():
        meta.add(name, np.float32, shape)
    return meta
