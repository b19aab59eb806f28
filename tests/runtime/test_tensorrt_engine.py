"""The TensorRT backend and its cuda-python layer.

No machine here has TensorRT or a GPU, so the logic (error lines, buffer copies, batch slicing,
CUDA-graph capture and replay, release) runs against stand-ins: ``FakeCudart`` keeps "device"
memory in host RAM and ``FakeTensorRT`` computes ``2x + 1``. The last test runs a real engine
and is skipped unless TensorRT and a GPU are present.
"""

from __future__ import annotations

import ctypes
import enum
import json
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import engine_entry, graph_spec, manifest_of

from fundusrt.runtime.bundle import Bundle, TensorSpec, engine_key, sha256
from fundusrt.runtime.engines import cuda, tensorrt_engine
from fundusrt.runtime.engines.base import EngineError
from fundusrt.runtime.engines.tensorrt_engine import TensorRTEngine

TRT_MISSING = "TensorRT is not installed (pip install 'fundusrt[trt]' on a machine with an NVIDIA GPU)"


class FakeCudart:
    """Enough of ``cuda.bindings.runtime`` for the code under test; "device" memory is host memory."""

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorMemoryAllocation = 2
        cudaErrorInsufficientDriver = 35
        cudaErrorNoDevice = 100

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStreamCaptureMode(enum.IntEnum):
        cudaStreamCaptureModeGlobal = 0

    cudaStreamNonBlocking = 1
    OK = cudaError_t.cudaSuccess

    def __init__(self, devices: int = 1):
        self.devices = devices
        self.blocks: dict[int, ctypes.Array] = {}
        self.streams: set[int] = set()
        self.capture: list | None = None  # work recorded while a stream is being captured
        self.launches = 0
        self.graphs_destroyed = 0

    def enqueue(self, work) -> None:
        work() if self.capture is None else self.capture.append(work)

    def cudaGetErrorName(self, err):
        return self.OK, self.cudaError_t(err).name.encode()

    def cudaGetDeviceCount(self):
        return (self.OK, self.devices) if self.devices else (self.cudaError_t.cudaErrorNoDevice, 0)

    def cudaGetDeviceProperties(self, device):
        return self.OK, types.SimpleNamespace(major=9, minor=0, name=b"Fake H100\x00")

    def cudaMalloc(self, nbytes):
        if nbytes > 1 << 30:
            return self.cudaError_t.cudaErrorMemoryAllocation, 0
        block = ctypes.create_string_buffer(nbytes)
        self.blocks[ctypes.addressof(block)] = block
        return self.OK, ctypes.addressof(block)

    cudaMallocHost = cudaMalloc

    def cudaFree(self, ptr):
        del self.blocks[ptr]  # a second free of the same pointer fails the test with KeyError
        return (self.OK,)

    cudaFreeHost = cudaFree

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        assert kind in (self.cudaMemcpyKind.cudaMemcpyHostToDevice, self.cudaMemcpyKind.cudaMemcpyDeviceToHost)
        self.enqueue(lambda: ctypes.memmove(dst, src, nbytes))
        return (self.OK,)

    def cudaStreamCreateWithFlags(self, flags):
        self.streams.add(7)
        return self.OK, 7

    def cudaStreamSynchronize(self, stream):
        assert stream in self.streams
        return (self.OK,)

    def cudaStreamDestroy(self, stream):
        self.streams.remove(stream)  # a second destroy fails the test with KeyError
        return (self.OK,)

    def released(self) -> bool:
        return not self.blocks and not self.streams

    def cudaStreamBeginCapture(self, stream, mode):
        self.capture = []
        return (self.OK,)

    def cudaStreamEndCapture(self, stream):
        graph, self.capture = self.capture, None
        return self.OK, graph

    def cudaGraphInstantiate(self, graph, flags):
        return self.OK, list(graph)

    def cudaGraphLaunch(self, graph_exec, stream):
        self.launches += 1
        for work in graph_exec:
            work()
        return (self.OK,)

    def cudaGraphExecDestroy(self, graph_exec):
        self.graphs_destroyed += 1
        return (self.OK,)

    def cudaGraphDestroy(self, graph):
        return (self.OK,)


class FakeTensorRT:
    """An engine with input ``image`` (batch, 3, 4, 4), outputs ``double`` = 2x + 1 (same shape) and
    ``mean`` (batch,) in float16; profile batch 1..4."""

    __version__ = "10.9.0"
    MAX_BATCH = 4

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    class TensorIOMode(enum.Enum):
        INPUT = 1
        OUTPUT = 2

    class DataType(enum.Enum):
        FLOAT = 0
        HALF = 1

    def __init__(self, cudart: FakeCudart, output_names=("double", "mean")):
        self.cudart = cudart
        mode, dtype = self.TensorIOMode, self.DataType
        self.tensors = {
            "image": (mode.INPUT, (-1, 3, 4, 4), dtype.FLOAT),
            output_names[0]: (mode.OUTPUT, (-1, 3, 4, 4), dtype.FLOAT),
            output_names[1]: (mode.OUTPUT, (-1,), dtype.HALF),
        }
        self.executions = 0

    @staticmethod
    def nptype(dtype):
        return {FakeTensorRT.DataType.FLOAT: np.float32, FakeTensorRT.DataType.HALF: np.float16}[dtype]

    def Runtime(self, logger):
        return types.SimpleNamespace(deserialize_cuda_engine=lambda data: self if data == b"plan" else None)

    # ICudaEngine
    @property
    def num_io_tensors(self):
        return len(self.tensors)

    def get_tensor_name(self, i):
        return list(self.tensors)[i]

    def get_tensor_mode(self, name):
        return self.tensors[name][0]

    def get_tensor_shape(self, name):
        return self.tensors[name][1]

    def get_tensor_dtype(self, name):
        return self.tensors[name][2]

    def get_tensor_profile_shape(self, name, profile):
        rest = self.tensors[name][1][1:]
        return (1, *rest), (2, *rest), (self.MAX_BATCH, *rest)

    def create_execution_context(self):
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeTensorRT):
        self.engine, self.shapes, self.addresses = engine, {}, {}

    def set_optimization_profile_async(self, index, stream):
        return index == 0

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return 1 <= shape[0] <= self.engine.MAX_BATCH

    def get_tensor_shape(self, name):
        return self.shapes.get(name) or (self.shapes["image"][0], *self.engine.tensors[name][1][1:])

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        return True

    def _view(self, name, dtype, shape) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.ndarray(shape, dtype, (ctypes.c_byte * nbytes).from_address(self.addresses[name]))

    def execute_async_v3(self, stream):
        batch, (double, mean) = self.shapes["image"][0], list(self.engine.tensors)[1:]

        def work():  # batch is fixed now, as a captured graph fixes it
            x = self._view("image", np.float32, (batch, 3, 4, 4))
            self._view(double, np.float32, x.shape)[...] = 2 * x + 1
            self._view(mean, np.float16, (batch,))[...] = x.mean(axis=(1, 2, 3))

        self.engine.executions += 1
        self.engine.cudart.enqueue(work)
        return True


@pytest.fixture
def fake_cudart(monkeypatch):
    fake = FakeCudart()
    monkeypatch.setattr(cuda, "_cudart", lambda: fake)
    return fake


def _bundle(root, outputs=("double", "mean")) -> Bundle:
    key = engine_key((9, 0), FakeTensorRT.__version__, "fp16", "ab" * 32)
    (root / "engines" / key).mkdir(parents=True)
    (root / "engines" / key / "locator.engine").write_bytes(b"plan")
    spec = graph_spec(
        [TensorSpec("image", ("batch", 3, 4, 4), "float32")],
        [TensorSpec(outputs[0], ("batch", 3, 4, 4), "float32"), TensorSpec(outputs[1], ("batch",), "float32")],
        {"fp32": ("locator.onnx", "ab" * 32)},
    )
    engines = [engine_entry("locator", key, f"engines/{key}/locator.engine", "-")]
    return Bundle(root, manifest_of({"locator": spec}, engines=engines))


@pytest.fixture
def fake_trt(monkeypatch, fake_cudart):
    fake = FakeTensorRT(fake_cudart)
    monkeypatch.setattr(tensorrt_engine, "import_tensorrt", lambda: fake)
    return fake


# -- without cuda-python or TensorRT ---------------------------------------------------------------

BLOCKED_IMPORTS = r"""
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"cuda", "tensorrt"}:
            raise ImportError(f"{name} blocked for this test")

sys.meta_path.insert(0, Block())
from fundusrt.runtime.engines import cuda, tensorrt_engine
from fundusrt.runtime.engines.base import EngineError

loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"cuda", "tensorrt"})
errors = []
for call in (cuda.gpu_count, lambda: tensorrt_engine.TensorRTEngine(None, "locator")):
    try:
        call()
    except EngineError as e:
        errors.append(str(e))
print(json.dumps({"loaded": loaded, "errors": errors}))
"""


def test_modules_import_without_cuda_python_or_tensorrt_and_say_what_is_missing():
    out = subprocess.run([sys.executable, "-c", BLOCKED_IMPORTS], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["loaded"] == []  # both are imported on first use only
    assert report["errors"] == ["cuda-python is not installed (pip install 'fundusrt[trt]')", TRT_MISSING]


def _tensorrt_importable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_tensorrt_importable(), reason="TensorRT is installed here")
def test_engine_without_tensorrt_is_one_line_error():
    with pytest.raises(EngineError) as info:
        TensorRTEngine(None, "locator")
    assert str(info.value) == TRT_MISSING


def test_a_tensorrt_stub_without_runtime_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    with pytest.raises(EngineError, match="no runtime"):
        TensorRTEngine(None, "locator")


# -- the cuda layer ---------------------------------------------------------------------------------


def test_check_unpacks_values_and_names_the_error(fake_cudart):
    ok, oom = FakeCudart.OK, FakeCudart.cudaError_t.cudaErrorMemoryAllocation
    assert cuda.check((ok,)) is None
    assert cuda.check((ok, 5)) == 5
    assert cuda.check((ok, 5, 6)) == (5, 6)
    with pytest.raises(EngineError) as info:
        cuda.check((oom, None), "cudaMalloc")
    assert str(info.value) == "cudaMalloc failed: cudaErrorMemoryAllocation (2)"
    with pytest.raises(EngineError, match="cudaMalloc failed: cudaErrorMemoryAllocation"):
        cuda.DeviceBuffer(1 << 40)


def test_device_queries(fake_cudart, monkeypatch):
    from fundusrt.export.engines import EngineBuildUnavailable
    from fundusrt.export.engines import compute_capability as export_capability

    assert cuda.gpu_count() == 1
    assert cuda.compute_capability() == (9, 0) == export_capability()
    assert cuda.device_name() == "Fake H100"
    fake_cudart.devices = 0
    assert cuda.gpu_count() == 0
    with pytest.raises(EngineError, match="^no CUDA GPU is visible$"):
        cuda.compute_capability()
    with pytest.raises(EngineBuildUnavailable, match="^no CUDA GPU is visible$"):
        export_capability()


def test_buffers_round_trip_copy_partially_and_free_once(fake_cudart):
    with cuda.Stream() as stream, cuda.PinnedBuffer((4, 3), np.float32) as src, cuda.PinnedBuffer((4, 3)) as dst:
        assert stream.handle == 7 and src.nbytes == 48
        device = cuda.DeviceBuffer(src.nbytes)
        src.array[...] = np.arange(12, dtype=np.float32).reshape(4, 3)
        device.copy_from_host_async(src, stream)
        device.copy_to_host_async(dst, stream)
        stream.synchronize()
        np.testing.assert_array_equal(dst.array, src.array)
        dst.array[...] = 0
        device.copy_to_host_async(dst, stream, src.array[:2].nbytes)  # the first two rows only
        np.testing.assert_array_equal(dst.array, [[0, 1, 2], [3, 4, 5], [0, 0, 0], [0, 0, 0]])
        with pytest.raises(EngineError, match="copy of 96 bytes"):
            device.copy_to_host_async(dst, stream, 96)
        device.close()
        device.close()
    assert src.array is None and fake_cudart.released()
    src.close()  # a second close frees nothing (FakeCudart.cudaFree would raise KeyError)


# -- the engine, on stand-ins -----------------------------------------------------------------------


def test_engine_runs_batches_and_releases_everything(tmp_path, fake_trt, fake_cudart):
    engine = TensorRTEngine(_bundle(tmp_path), "locator")
    assert engine.max_batch == 4 and engine.description == "tensorrt 10.9.0 fp16 on sm90"
    assert [t.name for t in engine.outputs] == ["double", "mean"]
    rng = np.random.default_rng(0)
    for batch in (2, 4, 1):
        x = rng.standard_normal((batch, 3, 4, 4), dtype=np.float32)
        out = engine.run({"image": x})
        assert out["double"].shape == (batch, 3, 4, 4) and out["mean"].shape == (batch,)
        assert out["double"].dtype == out["mean"].dtype == np.float32  # float16 engine outputs come back as float32
        np.testing.assert_allclose(out["double"], 2 * x + 1, rtol=1e-6)
        np.testing.assert_allclose(out["mean"], x.mean(axis=(1, 2, 3)), atol=1e-3)
    with pytest.raises(EngineError, match="batch of 5, this engine takes 1 to 4"):
        engine.run({"image": np.zeros((5, 3, 4, 4), np.float32)})
    engine.close()
    engine.close()
    assert fake_cudart.released()


def test_cuda_graph_is_captured_once_per_batch_size_and_replayed(tmp_path, fake_trt, fake_cudart):
    with TensorRTEngine(_bundle(tmp_path), "locator", cuda_graph=True) as engine:
        for i, batch in enumerate((2, 2, 2, 3)):
            x = np.full((batch, 3, 4, 4), i, np.float32)
            np.testing.assert_array_equal(engine.run({"image": x})["double"], 2 * x + 1)
        # batch 2: warm-up + capture, then replays only; batch 3: the old graph dropped, warm-up + capture
        assert fake_trt.executions == 4 and fake_cudart.launches == 4 and fake_cudart.graphs_destroyed == 1
    assert fake_cudart.graphs_destroyed == 2 and fake_cudart.released()


def test_open_engine_passes_cuda_graphs_to_tensorrt_and_refuses_them_elsewhere(tmp_path, fake_trt, fake_cudart):
    from fundusrt.runtime.engines import open_engine

    bundle = _bundle(tmp_path)
    with open_engine(bundle, "locator", backend="tensorrt", device="cuda", precision="fp16", cuda_graph=True) as engine:
        engine.run({"image": np.zeros((2, 3, 4, 4), np.float32)})
        engine.run({"image": np.zeros((2, 3, 4, 4), np.float32)})
        assert isinstance(engine, TensorRTEngine)
        assert fake_trt.executions == 2 and fake_cudart.launches == 2  # captured once, then replayed
    with pytest.raises(EngineError, match="CUDA graphs need the tensorrt backend on a GPU; this is onnxruntime on cpu"):
        open_engine(bundle, "locator", backend="onnxruntime", device="cpu", cuda_graph=True)


def test_engine_refuses_tensors_the_manifest_does_not_name(tmp_path, fake_trt, fake_cudart):
    with pytest.raises(EngineError, match=r"engine outputs \['double', 'mean'\], manifest.json has \['heatmap'"):
        TensorRTEngine(_bundle(tmp_path, outputs=("heatmap", "mean")), "locator")
    assert fake_cudart.released()  # what was allocated before the refusal is freed


def test_engine_from_another_machine_is_refused_by_the_bundle(tmp_path, fake_trt, fake_cudart):
    from fundusrt.runtime.bundle import BundleError

    fake_trt.__version__ = "10.13.0"
    with pytest.raises(BundleError, match="built elsewhere"):
        TensorRTEngine(_bundle(tmp_path), "locator")


# -- a real engine, where TensorRT and a GPU are present ---------------------------------------------


def _gpu_with_tensorrt() -> bool:
    try:
        import tensorrt

        return hasattr(tensorrt, "Builder") and cuda.gpu_count() > 0
    except (ImportError, EngineError):
        return False


@pytest.mark.skipif(not _gpu_with_tensorrt(), reason="needs TensorRT (with its builder) and a CUDA GPU")
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_real_engine_of_a_bundle_runs_on_the_gpu(tmp_path, cuda_graph):
    onnx = pytest.importorskip("onnx")
    import tensorrt as trt
    from onnx import TensorProto, helper

    from fundusrt.export.engines import _build_one, build_plan, profile_shapes

    shape = ["batch", 3, 8, 8]
    graph = helper.make_graph(
        [helper.make_node("Mul", ["image", "two"], ["twice"]), helper.make_node("Add", ["twice", "one"], ["out"])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        [helper.make_tensor(name, TensorProto.FLOAT, [], [value]) for name, value in (("two", 2.0), ("one", 1.0))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what TensorRT 10's parser reads
    onnx.save(model, tmp_path / "locator.onnx")
    onnx_sha = sha256(tmp_path / "locator.onnx")
    spec = graph_spec(
        [TensorSpec("image", tuple(shape), "float32")], [TensorSpec("out", tuple(shape), "float32")],
        {"fp32": ("locator.onnx", onnx_sha)},
    )  # fmt: skip
    _, strongly_typed, fp16_flag = build_plan(int(trt.__version__.split(".")[0]), "fp32")
    plan = _build_one(
        trt, trt.Logger(trt.Logger.WARNING), tmp_path / "locator.onnx",
        profile_shapes(spec, max_batch=4, opt_batch=2), strongly_typed, fp16_flag, 1.0, tmp_path / "timing.cache",
    )  # fmt: skip
    key = engine_key(cuda.compute_capability(), trt.__version__, "fp32", onnx_sha)
    (tmp_path / "engines" / key).mkdir(parents=True)
    (tmp_path / "engines" / key / "locator.engine").write_bytes(plan)
    engines = [engine_entry("locator", key, f"engines/{key}/locator.engine", "-")]
    bundle = Bundle(tmp_path, manifest_of({"locator": spec}, engines=engines, max_batch=4))

    rng = np.random.default_rng(0)
    with TensorRTEngine(bundle, "locator", precision="fp32", cuda_graph=cuda_graph) as engine:
        assert engine.max_batch == 4 and engine.description.startswith(f"tensorrt {trt.__version__} fp32 on sm")
        for batch in (1, 3, 3, 4, 2):
            x = rng.standard_normal((batch, 3, 8, 8), dtype=np.float32)
            np.testing.assert_allclose(engine.run({"image": x})["out"], 2 * x + 1, rtol=1e-6, atol=1e-6)
