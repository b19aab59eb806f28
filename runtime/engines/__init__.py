"""Inference backends behind one interface (``Engine``), and ``open_engine`` to pick one.

``auto`` takes the fastest backend present for the device: native TensorRT where it and an
engine built for this GPU exist, else ONNX Runtime (TensorRT/CUDA providers on a GPU, the
CPU otherwise). The engine's ``description`` says which it took. ``cuda_graph`` replays each
batch size's TensorRT run as a CUDA graph (less launch overhead at a fixed batch, e.g. a device
screening one photograph at a time); it needs the TensorRT backend and says so otherwise.
"""

from __future__ import annotations

from ..bundle import Bundle, BundleError
from .base import Engine, EngineError

BACKENDS = ("auto", "onnxruntime", "tensorrt")
DEVICES = ("auto", "cpu", "cuda")


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
    if backend not in BACKENDS:
        raise EngineError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    device = resolve_device(device)
    if backend == "tensorrt" or (backend == "auto" and device == "cuda" and _tensorrt_importable()):
        if device != "cuda":
            raise EngineError("the tensorrt backend runs on a GPU: use --device cuda (or auto)")
        from .tensorrt_engine import TensorRTEngine

        try:
            return TensorRTEngine(bundle, graph, precision=precision, cuda_graph=cuda_graph)
        except (EngineError, BundleError):
            if backend == "tensorrt" or cuda_graph:
                raise  # asked for by name (or for CUDA graphs): say why not; auto falls through to ONNX Runtime
    if cuda_graph:
        raise EngineError(f"CUDA graphs need the tensorrt backend on a GPU; this is {backend} on {device}")
    from .onnxruntime_engine import OnnxRuntimeEngine

    return OnnxRuntimeEngine(bundle, graph, precision=precision, device=device, threads=threads)


def _tensorrt_importable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


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
