"""The OpenVINO backend: the bundle's ONNX files compiled for the CPU by Intel's inference runtime.

Precisions:
- ``fp32``: the FP32 graph at FP32. OpenVINO's CPU plugin would run BF16 by default on a CPU that
  has it, so FP32 is asked for explicitly.
- ``bf16``: the same FP32 graph with BF16 as the inference precision, only where the CPU computes
  BF16 natively (AVX-512 BF16 or AMX); elsewhere one line says so.
- ``int8``: the bundle's INT8 graph; OpenVINO runs its quantise/dequantise pairs as INT8 kernels
  (VNNI or AMX where the CPU has them).
FP16 graphs are for GPUs and are refused here.

The LATENCY performance hint: one inference stream using every thread given, which is what a
caller running one batch at a time needs (the THROUGHPUT hint splits the cores into streams that
a single synchronous request leaves idle). Compiled models are cached inside the bundle, under
``engines/openvino`` (keyed by OpenVINO on the file, the CPU and the settings), so a second start
skips compilation; a read-only bundle runs without the cache.
"""

from __future__ import annotations

import os

import numpy as np

from ..bundle import Bundle
from ..constants import file_precision
from .base import Engine, EngineError, import_backend

PRECISIONS = ("fp32", "bf16", "int8")
CACHE = ("engines", "openvino")


def import_openvino():
    return import_backend("openvino", "OpenVINO is not installed (pip install 'fundusrt[openvino]')")


def cpu_has_bf16(core) -> bool:
    """Native BF16 arithmetic (OpenVINO lists it among the CPU's optimisation capabilities)."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoEngine(Engine):
    def __init__(self, bundle: Bundle, graph: str, *, precision: str = "fp32", threads: int | None = None):
        ov = import_openvino()
        if precision not in PRECISIONS:
            raise EngineError(
                f"OpenVINO runs {', '.join(PRECISIONS)} on the CPU, not {precision} (FP16 graphs are for GPUs)"
            )
        core = ov.Core()
        cpu = core.get_property("CPU", "FULL_DEVICE_NAME")
        if precision == "bf16" and not cpu_has_bf16(core):
            raise EngineError(f"bf16: this CPU ({cpu}) has no native BF16 (AVX-512 BF16 or AMX); use fp32 or int8")
        spec = bundle.graph(graph)
        self.inputs, self.outputs, self.max_batch = spec.inputs, spec.outputs, bundle.manifest.max_batch
        path = bundle.file(graph, file_precision(precision))
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "INFERENCE_NUM_THREADS": threads or os.cpu_count() or 1,
        }
        cache = _writable(bundle.root.joinpath(*CACHE))
        if cache:
            config["CACHE_DIR"] = str(cache)
        try:
            self._compiled = core.compile_model(str(path), "CPU", config)
        except RuntimeError as e:
            raise EngineError(f"{path}: OpenVINO could not compile it: {str(e).strip().splitlines()[0]}") from None
        for kind, ports, specs in (("inputs", self._compiled.inputs, self.inputs),
                                   ("outputs", self._compiled.outputs, self.outputs)):  # fmt: skip
            names = {port.get_any_name() for port in ports}
            if names != {t.name for t in specs}:
                raise EngineError(f"{path}: graph {kind} {sorted(names)} do not match manifest.json")
        # What the compiled model computes in (f32 or bf16): the check that the hint was taken.
        self.inference_precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self._request = self._compiled.create_infer_request()
        self._output_names = [t.name for t in self.outputs]
        self.description = f"openvino {ov.get_version().split('-')[0]} CPU {precision} ({cpu})"
        if not cache:
            self.description += ", no compile cache (bundle read-only)"

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Inputs are read in place; outputs come back as copies (share_outputs is off), so a result
        # stays valid after the next run.
        results = self._request.infer(feeds, share_inputs=True)
        by_name = {port.get_any_name(): value for port, value in results.items()}
        return {name: np.asarray(by_name[name], dtype=np.float32) for name in self._output_names}

    def close(self) -> None:
        self._request = self._compiled = None


def _writable(folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None
