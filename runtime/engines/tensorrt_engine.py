"""The native TensorRT backend: a bundle's prebuilt engine, run through the TensorRT 10/11 Python API.

This code has never run here: no machine available to the project has TensorRT. It is
written against NVIDIA's documented API (name-based I/O tensors, ``set_input_shape`` +
``set_tensor_address`` + ``execute_async_v3``) and cuda-python; its logic is unit-tested
against stand-ins for both.

One execution context on optimisation profile 0. Every I/O tensor gets a pinned host buffer
and a device buffer sized for the profile's largest batch, allocated once; their addresses are
given to the context once and never change. A run copies the batch in, enqueues, copies the
batch's rows out and waits.

``cuda_graph=True`` records the enqueue as a CUDA graph and replays it: worth it for a fixed
batch size only. The first run at a batch size enqueues once normally (TensorRT allocates
shape-dependent resources then), then captures; later runs at that size replay. A different
batch size drops the graph and captures again.
"""

from __future__ import annotations

import numpy as np

from ..bundle import Bundle, TensorSpec
from . import cuda
from .base import Engine, EngineError, import_backend

PROFILE = 0


def import_tensorrt():
    """The tensorrt module, or one EngineError line saying what is missing."""
    trt = import_backend(
        "tensorrt", "TensorRT is not installed (pip install 'fundusrt[trt]' on a machine with an NVIDIA GPU)"
    )
    if not hasattr(trt, "Runtime"):
        raise EngineError("the installed tensorrt package has no runtime (a stub?)")
    return trt


class TensorRTEngine(Engine):
    def __init__(self, bundle: Bundle, graph: str, *, precision: str = "fp16", cuda_graph: bool = False):
        trt = import_tensorrt()
        major, minor = cuda.compute_capability()
        path = bundle.engine(graph, compute_capability=(major, minor), trt_version=trt.__version__, precision=precision)
        spec = bundle.graph(graph)
        self.inputs, self.outputs = spec.inputs, spec.outputs
        self.description = f"tensorrt {trt.__version__} {precision} on sm{major}{minor}"
        self._use_graph = cuda_graph
        self._batch = 0  # the batch size the context's input shapes are set for
        self._graph = self._graph_exec = None
        self._host: dict[str, cuda.PinnedBuffer] = {}
        self._device: dict[str, cuda.DeviceBuffer] = {}
        self._stream = None
        self._context = self._engine = None

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise EngineError(f"{path}: TensorRT could not deserialize it (see its log above)")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"{path}: TensorRT could not create an execution context")
        try:
            self._stream = cuda.Stream()
            if not self._context.set_optimization_profile_async(PROFILE, self._stream.handle):
                raise EngineError(f"{path}: TensorRT refused optimisation profile {PROFILE}")
            self.max_batch = self._check_tensors(trt, path)
            self._allocate(trt)
        except BaseException:
            self.close()
            raise

    def _check_tensors(self, trt, path) -> int:
        """The engine's I/O must be the manifest's: same names, same non-batch dims. Returns max batch."""
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = {n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT}
        outputs = set(names) - inputs
        for kind, have, want in (("inputs", inputs, self.inputs), ("outputs", outputs, self.outputs)):
            if have != {t.name for t in want}:
                raise EngineError(f"{path}: engine {kind} {sorted(have)}, manifest.json has {[t.name for t in want]}")
        for spec in (*self.inputs, *self.outputs):
            shape = tuple(engine.get_tensor_shape(spec.name))
            if len(shape) != len(spec.shape) or shape[1:] != tuple(spec.shape[1:]):
                raise EngineError(f"{path}: tensor {spec.name!r} is {shape} in the engine, {spec.shape} in manifest")
        # The profile's max shape bounds the batch; with several inputs the smallest bound holds.
        return min(int(engine.get_tensor_profile_shape(t.name, PROFILE)[2][0]) for t in self.inputs)

    def _allocate(self, trt) -> None:
        for spec in (*self.inputs, *self.outputs):
            dtype = self._numpy_dtype(trt, spec)
            host = cuda.PinnedBuffer((self.max_batch, *spec.shape[1:]), dtype)
            self._host[spec.name] = host
            self._device[spec.name] = cuda.DeviceBuffer(host.nbytes)
            if not self._context.set_tensor_address(spec.name, self._device[spec.name].ptr):
                raise EngineError(f"{self.description}: set_tensor_address({spec.name!r}) refused")

    def _numpy_dtype(self, trt, spec: TensorSpec) -> np.dtype:
        try:
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(spec.name)))
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind != "f":
            raise EngineError(f"{self.description}: tensor {spec.name!r} is not floating point in the engine")
        return dtype  # float16 I/O is converted on the host side; callers always see float32

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(feeds.values())).shape[0]
        for name, array in feeds.items():
            host = self._host[name]
            host.array[:batch] = array
            self._device[name].copy_from_host_async(host, self._stream, host.array[:batch].nbytes)
        if batch != self._batch:
            self._set_batch(batch)
        self._enqueue(batch)
        shapes = {t.name: tuple(self._context.get_tensor_shape(t.name)) for t in self.outputs}
        for name, shape in shapes.items():
            host = self._host[name]
            self._device[name].copy_to_host_async(host, self._stream, host.array[: shape[0]].nbytes)
        self._stream.synchronize()
        return {name: self._host[name].array[: shape[0]].astype(np.float32) for name, shape in shapes.items()}

    def _set_batch(self, batch: int) -> None:
        self._drop_graph()  # a graph replays the shapes it was captured with
        for spec in self.inputs:
            if not self._context.set_input_shape(spec.name, (batch, *spec.shape[1:])):
                raise EngineError(f"{self.description}: batch {batch} refused for input {spec.name!r}")
        self._batch = batch

    def _enqueue(self, batch: int) -> None:
        if not self._use_graph:
            return self._execute()
        cudart = cuda._cudart()
        stream = self._stream.cuda_stream
        if self._graph_exec is None:
            self._execute()  # warm-up: TensorRT sets up shape-dependent state outside the capture
            mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
            cuda.check(cudart.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")
            try:
                self._execute()
            except BaseException:
                cudart.cudaStreamEndCapture(stream)  # leave capture mode; the enqueue's error is the one to report
                raise
            self._graph = cuda.check(cudart.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
            self._graph_exec = cuda.check(cudart.cudaGraphInstantiate(self._graph, 0), "cudaGraphInstantiate")
        cuda.check(cudart.cudaGraphLaunch(self._graph_exec, stream), "cudaGraphLaunch")

    def _execute(self) -> None:
        if not self._context.execute_async_v3(self._stream.handle):
            raise EngineError(f"{self.description}: execute_async_v3 failed (see TensorRT's log above)")

    def _drop_graph(self) -> None:
        if self._graph_exec is not None or self._graph is not None:
            cudart = cuda._cudart()
            if self._graph_exec is not None:
                cuda.check(cudart.cudaGraphExecDestroy(self._graph_exec), "cudaGraphExecDestroy")
            if self._graph is not None:
                cuda.check(cudart.cudaGraphDestroy(self._graph), "cudaGraphDestroy")
        self._graph = self._graph_exec = None

    def close(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()  # nothing in flight may touch memory freed below
        self._drop_graph()
        self._context = self._engine = self._runtime = None  # TensorRT frees each when its last reference goes
        for buffer in (*self._host.values(), *self._device.values()):
            buffer.close()
        self._host, self._device = {}, {}
        if self._stream is not None:
            self._stream.close()
            self._stream = None
