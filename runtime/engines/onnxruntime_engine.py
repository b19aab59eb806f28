"""The ONNX Runtime backend: CPU everywhere; CUDA and TensorRT execution providers where installed.

CPU: one intra-op thread per core (``os.cpu_count()``; set ``threads`` on a shared machine),
sequential execution, all graph optimisations. GPU: the TensorRT execution provider first
(its engine and timing caches inside the bundle, under ``engines/onnxruntime-trt``), CUDA
next, CPU last; inputs are bound through IOBinding so outputs stay on the device until the
single copy back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..bundle import Bundle
from .base import Engine, EngineError, import_backend

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def _ort():
    return import_backend("onnxruntime", "onnxruntime is not installed (pip install onnxruntime)")


def gpu_providers_available() -> list[str]:
    return [p for p in GPU_PROVIDERS if p in _ort().get_available_providers()]


class OnnxRuntimeEngine(Engine):
    def __init__(
        self,
        bundle: Bundle,
        graph: str,
        *,
        precision: str = "fp32",
        device: str = "cpu",
        threads: int | None = None,
    ):
        ort = _ort()
        spec = bundle.graph(graph)
        self.inputs, self.outputs, self.max_batch = spec.inputs, spec.outputs, bundle.manifest.max_batch
        path = bundle.file(graph, precision)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: the CPU provider warns about FP16 nodes it runs in FP32
        providers = self._providers(bundle.root, device, precision)
        self._session = ort.InferenceSession(str(path), options, providers=providers)
        got = self._session.get_providers()[0]
        if device == "cuda" and got == "CPUExecutionProvider":
            raise EngineError(f"{path}: no GPU execution provider could start (onnxruntime-gpu and CUDA needed)")
        self._device = "cuda" if got in GPU_PROVIDERS else "cpu"
        self.description = f"onnxruntime {ort.__version__} {got.removesuffix('ExecutionProvider')} {precision}"
        self._output_names = [t.name for t in self.outputs]
        names = {i.name for i in self._session.get_inputs()}
        if names != {t.name for t in self.inputs}:
            raise EngineError(f"{path}: graph inputs {sorted(names)} do not match manifest.json")

    @staticmethod
    def _providers(root: Path, device: str, precision: str) -> list:
        if device == "cpu":
            return ["CPUExecutionProvider"]
        if device != "cuda":
            raise EngineError(f"device must be 'cpu' or 'cuda', got {device!r}")
        available = gpu_providers_available()
        if not available:
            raise EngineError("device 'cuda' asked for, but onnxruntime has no CUDA or TensorRT provider here")
        providers = []
        if "TensorrtExecutionProvider" in available:
            cache = root / "engines" / "onnxruntime-trt"
            cache.mkdir(parents=True, exist_ok=True)
            options = {
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache),
                "trt_fp16_enable": precision == "fp16",
            }
            providers.append(("TensorrtExecutionProvider", options))
        if "CUDAExecutionProvider" in available:
            providers.append("CUDAExecutionProvider")
        return [*providers, "CPUExecutionProvider"]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._device == "cpu":
            return dict(zip(self._output_names, self._session.run(self._output_names, feeds)))
        binding = self._session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        for name in self._output_names:
            binding.bind_output(name, "cuda")
        self._session.run_with_iobinding(binding)
        return dict(zip(self._output_names, binding.copy_outputs_to_cpu()))

    def close(self) -> None:
        self._session = None
