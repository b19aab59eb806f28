"""Inference backends behind one interface (``Engine``), and ``open_engine`` to pick one.

``auto`` takes the fastest backend present for the device: on a GPU, native TensorRT where it
and an engine built for this GPU exist, else ONNX Runtime's TensorRT/CUDA providers; on a CPU,
OpenVINO where it is installed (it runs fp32, bf16 and int8), else ONNX Runtime. The engine's
``description`` says which it took, and for ``auto`` why. ``cuda_graph`` replays each
batch size's TensorRT run as a CUDA graph (less launch overhead at a fixed batch, e.g. a device
screening one photograph at a time); it needs the TensorRT backend and says so otherwise.

A graph that a lower precision moves beyond its parity tolerance runs at FP32 when that precision is
asked for (``constants.KEEPS_FP32``: the classifier under bf16 and int8), and its description says so;
under bf16, a graph whose bundle names its FP32 part (``fp32_until``) runs that part FP32, the rest BF16.
"""

from __future__ import annotations

from ..bundle import Bundle, BundleError
from ..constants import BACKENDS, DEVICES, run_precision
from .base import Engine, EngineError


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` where a GPU backend can run, else ``cpu``."""
    if device not in DEVICES:
        raise EngineError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device != "auto":
        return device
    return "cuda" if _gpu_present() else "cpu"


def open_engine(
    bundle: Bundle,
    graph: str,
    *,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "fp32",
    threads: int | None = None,
    cuda_graph: bool = False,
) -> Engine:
    """The engine of ``graph`` on the backend and device asked for, at ``precision`` or, where that
    precision misses the graph's parity tolerance, at FP32 (the description says which)."""
    engine = _open(bundle, graph, backend, device, precision, threads, cuda_graph)
    if run_precision(precision, graph, bundle.graph(graph).fp32_until) != precision:
        engine.description += f"; {graph} kept at fp32 ({precision} moves its output beyond its parity tolerance)"
    return engine


def _open(
    bundle: Bundle, graph: str, backend: str, device: str, precision: str, threads: int | None, cuda_graph: bool
) -> Engine:
    if backend not in BACKENDS:
        raise EngineError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    device = resolve_device(device)
    if precision == "bf16" and (backend not in ("auto", "openvino") or device != "cpu"):
        raise EngineError(f"bf16 runs on the openvino backend on a CPU, not on {backend} on {device}")
    # what the graph runs at (the routing above follows what was asked)
    run = run_precision(precision, graph, bundle.graph(graph).fp32_until)
    if backend == "tensorrt" or (backend == "auto" and device == "cuda" and _tensorrt_importable()):
        if device != "cuda":
            raise EngineError("the tensorrt backend runs on a GPU: use --device cuda (or auto)")
        from .tensorrt_engine import TensorRTEngine

        try:
            return TensorRTEngine(bundle, graph, precision=run, cuda_graph=cuda_graph)
        except (EngineError, BundleError):
            if backend == "tensorrt" or cuda_graph:
                raise  # asked for by name (or for CUDA graphs): say why not; auto falls through to ONNX Runtime
    if cuda_graph:
        raise EngineError(f"CUDA graphs need the tensorrt backend on a GPU; this is {backend} on {device}")
    if backend == "openvino" and device != "cpu":
        raise EngineError("the openvino backend runs on the CPU here: use --device cpu (or auto)")
    if backend == "openvino" or precision == "bf16":
        from .openvino_engine import OpenVinoEngine

        engine = OpenVinoEngine(bundle, graph, precision=run, threads=threads)
        if backend == "auto":
            engine.description += " (auto: bf16 runs on OpenVINO)"
        return engine
    why = None
    if backend == "auto" and device == "cpu":
        engine, why = _auto_cpu(bundle, graph, run, threads)
        if engine is not None:
            return engine
    from .onnxruntime_engine import OnnxRuntimeEngine

    engine = OnnxRuntimeEngine(bundle, graph, precision=run, device=device, threads=threads)
    if why:
        engine.description += f" (auto: {why})"
    return engine


def _auto_cpu(bundle: Bundle, graph: str, precision: str, threads: int | None) -> tuple[Engine | None, str]:
    """OpenVINO where it is installed and takes the precision; else None and why not."""
    from .openvino_engine import PRECISIONS, OpenVinoEngine

    if not _importable("openvino"):
        return None, "OpenVINO is not installed"
    if precision not in PRECISIONS:
        return None, f"OpenVINO does not take {precision} on a CPU"
    try:
        engine = OpenVinoEngine(bundle, graph, precision=precision, threads=threads)
    except EngineError as e:
        return None, f"OpenVINO failed: {e}"
    engine.description += " (auto: OpenVINO is installed and this is a CPU)"
    return engine, ""


def _tensorrt_importable() -> bool:
    return _importable("tensorrt")


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def _gpu_present() -> bool:
    from .onnxruntime_engine import gpu_providers_available

    try:
        if gpu_providers_available():
            return True
    except EngineError:
        pass
    try:
        from .cuda import gpu_count

        return gpu_count() > 0
    except Exception:  # no cuda-python or no driver: no GPU for us
        return False


__all__ = ["BACKENDS", "DEVICES", "Engine", "EngineError", "open_engine", "resolve_device"]
