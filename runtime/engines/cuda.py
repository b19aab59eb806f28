"""The few CUDA runtime calls the TensorRT backend needs, through cuda-python's ``cudart``.

cuda-python is imported on first use, so this module imports everywhere. Every ``cudart``
call returns ``(err, *values)``; ``check`` turns a failure into one ``EngineError`` line.
Buffers and streams free themselves on ``close()`` (safe twice) or at the end of a ``with``.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from .base import EngineError


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        raise EngineError("cuda-python is not installed (pip install 'fundusrt[trt]')") from None
    return cudart


def check(result: tuple, what: str = "CUDA call"):
    """``(err, *values)`` -> ``None``, the value, or the values; a failure raises ``EngineError``."""
    cudart = _cudart()
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        _, name = cudart.cudaGetErrorName(err)
        name = name.decode() if isinstance(name, bytes) else str(name)
        raise EngineError(f"{what} failed: {name} ({int(err)})")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def gpu_count() -> int:
    """Visible CUDA devices; 0 where there is no GPU or no driver (not an error: CPU machines)."""
    cudart = _cudart()
    err, count = cudart.cudaGetDeviceCount()
    if err in (cudart.cudaError_t.cudaErrorNoDevice, cudart.cudaError_t.cudaErrorInsufficientDriver):
        return 0
    return int(check((err, count), "cudaGetDeviceCount"))


def _properties(device: int):
    if gpu_count() == 0:
        raise EngineError("no CUDA GPU is visible")
    return check(_cudart().cudaGetDeviceProperties(device), "cudaGetDeviceProperties")


def compute_capability(device: int = 0) -> tuple[int, int]:
    props = _properties(device)
    return int(props.major), int(props.minor)


def device_name(device: int = 0) -> str:
    name = _properties(device).name
    return (name.decode() if isinstance(name, bytes) else str(name)).rstrip("\x00")


class _Resource:
    """close() once, however often it is called; ``with`` closes too."""

    _closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Stream(_Resource):
    """A non-blocking stream: no implicit sync with the legacy default stream, and capturable."""

    def __init__(self):
        cudart = _cudart()
        self._stream = check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreate")

    @property
    def handle(self) -> int:
        """The raw ``cudaStream_t`` as an int, which TensorRT's ``execute_async_v3`` takes."""
        return int(self._stream)

    @property
    def cuda_stream(self):
        """The ``cudaStream_t`` object, for other ``cudart`` calls."""
        return self._stream

    def synchronize(self) -> None:
        check(_cudart().cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def _release(self) -> None:
        check(_cudart().cudaStreamDestroy(self._stream), "cudaStreamDestroy")


class PinnedBuffer(_Resource):
    """Page-locked host memory (what async copies need) seen as a numpy array of ``shape``."""

    def __init__(self, shape: tuple[int, ...], dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.nbytes = math.prod(shape) * self.dtype.itemsize
        self.ptr = int(check(_cudart().cudaMallocHost(self.nbytes), "cudaMallocHost"))
        raw = (ctypes.c_byte * self.nbytes).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=self.dtype).reshape(shape)

    def _release(self) -> None:
        self.array = None  # the memory is gone: no view may outlive it
        check(_cudart().cudaFreeHost(self.ptr), "cudaFreeHost")


class DeviceBuffer(_Resource):
    """``nbytes`` of GPU memory; ``ptr`` is its device address as an int."""

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        self.ptr = int(check(_cudart().cudaMalloc(self.nbytes), "cudaMalloc"))

    def copy_from_host_async(self, pinned: PinnedBuffer, stream: Stream, nbytes: int | None = None) -> None:
        """Host -> device, the first ``nbytes`` (default: all of the pinned buffer)."""
        self._copy(self.ptr, pinned.ptr, self._size(pinned, nbytes), "cudaMemcpyHostToDevice", stream)

    def copy_to_host_async(self, pinned: PinnedBuffer, stream: Stream, nbytes: int | None = None) -> None:
        """Device -> host, the first ``nbytes`` (default: all of the pinned buffer)."""
        self._copy(pinned.ptr, self.ptr, self._size(pinned, nbytes), "cudaMemcpyDeviceToHost", stream)

    def _size(self, pinned: PinnedBuffer, nbytes: int | None) -> int:
        size = pinned.nbytes if nbytes is None else int(nbytes)
        if size > min(self.nbytes, pinned.nbytes):
            raise EngineError(f"copy of {size} bytes between buffers of {pinned.nbytes} and {self.nbytes}")
        return size

    @staticmethod
    def _copy(dst: int, src: int, nbytes: int, kind: str, stream: Stream) -> None:
        cudart = _cudart()
        kind_value = getattr(cudart.cudaMemcpyKind, kind)
        check(cudart.cudaMemcpyAsync(dst, src, nbytes, kind_value, stream.cuda_stream), "cudaMemcpyAsync")

    def _release(self) -> None:
        check(_cudart().cudaFree(self.ptr), "cudaFree")
