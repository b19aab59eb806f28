"""The OpenVINO backend: the bundle's ONNX files compiled for the CPU by Intel's inference runtime.

Precisions:
- ``fp32``: the FP32 graph at FP32. OpenVINO's CPU plugin would run BF16 by default on a CPU that
  has it, so FP32 is asked for explicitly.
- ``bf16``: the same FP32 graph with BF16 as the inference precision, only where the CPU computes
  BF16 natively (AVX-512 BF16 or AMX); elsewhere one line says so. A graph whose manifest names an
  FP32 part (``fp32_until``) is cut in two at those tensors: the part computing them compiled at
  FP32, the rest at BF16, run one after the other (OpenVINO's CPU plugin has no per-node precision).
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
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads or os.cpu_count() or 1}
        cache = _writable(bundle.root.joinpath(*CACHE))
        if cache:
            config["CACHE_DIR"] = str(cache)
        fp32_until = spec.fp32_until if precision == "bf16" else ()
        try:
            model = core.read_model(str(path))
            self._parts = [
                (core.compile_model(part, "CPU", {**config, "INFERENCE_PRECISION_HINT": hint}), hint)
                for part, hint in _cut(ov, model, fp32_until, "bf16" if precision == "bf16" else "f32")
            ]
        except RuntimeError as e:
            raise EngineError(f"{path}: OpenVINO could not compile it: {str(e).strip().splitlines()[0]}") from None
        for kind, ports, specs in (("inputs", self._parts[0][0].inputs, self.inputs),
                                   ("outputs", self._parts[-1][0].outputs, self.outputs)):  # fmt: skip
            names = {port.get_any_name() for port in ports}
            if names != {t.name for t in specs}:
                raise EngineError(f"{path}: graph {kind} {sorted(names)} do not match manifest.json")
        # What each compiled part computes in (f32 or bf16): the check that the hints were taken.
        self.inference_precisions = tuple(
            compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() for compiled, _ in self._parts
        )
        self.inference_precision = self.inference_precisions[-1]
        self._requests = [compiled.create_infer_request() for compiled, _ in self._parts]
        self._output_names = [t.name for t in self.outputs]
        self.description = f"openvino {ov.get_version().split('-')[0]} CPU {precision} ({cpu})"
        if fp32_until:
            tensors = f"{len(fp32_until)} tensor" + "s" * (len(fp32_until) != 1)
            self.description += f", first layers at fp32 (up to {tensors})"
        if not cache:
            self.description += ", no compile cache (bundle read-only)"

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = run_parts(self._requests, feeds)
        return {name: np.asarray(tensors[name], dtype=np.float32) for name in self._output_names}

    def close(self) -> None:
        self._requests = self._parts = []


def run_parts(requests, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the infer requests of a graph's parts one after the other: each reads what the graph's inputs
    and the parts before it computed, by tensor name. Inputs are read in place; a part's outputs are
    shared with its request (read by the next part before that request runs again), the last part's
    come back as copies, so a result stays valid after the next run."""
    tensors = dict(feeds)
    for i, request in enumerate(requests):
        wanted = {port.get_any_name() for port in request.model_inputs}
        last = i == len(requests) - 1
        results = request.infer({n: tensors[n] for n in wanted}, share_inputs=True, share_outputs=not last)
        tensors.update((port.get_any_name(), value) for port, value in results.items())
    return tensors


def _cut(ov, model, fp32_until: tuple[str, ...], hint: str) -> list:
    """[(model, inference precision)]: the whole model at ``hint``; or, given ``fp32_until``, the part
    computing those tensors at f32 and the rest at ``hint``, joined by the tensors crossing the cut
    (named as in the graph; the graph's own inputs that the rest reads pass through)."""
    if not fp32_until:
        return [(model, hint)]
    ports = {name: out for op in model.get_ordered_ops() for out in op.outputs() for name in out.get_names()}
    missing = [name for name in fp32_until if name not in ports]
    if missing:
        raise RuntimeError(f"manifest.json names tensors for its FP32 part that are not in the graph: {missing}")
    first, stack = set(), [ports[name].get_node() for name in fp32_until]
    while stack:  # everything that computes the named tensors
        node = stack.pop()
        if node.get_friendly_name() not in first:
            first.add(node.get_friendly_name())
            stack += [value.get_node() for value in node.input_values()]
    rest = [op for op in model.get_ordered_ops() if op.get_friendly_name() not in first]
    crossing = {}  # tensor name -> (the output that computes it, its consumers' inputs in the rest)
    for op in rest:
        for port in op.inputs():
            source = port.get_source_output()
            node = source.get_node()
            kind = node.get_type_name()
            if kind == "Parameter" or (node.get_friendly_name() in first and kind != "Constant"):
                crossing.setdefault(source.get_any_name(), (source, []))[1].append(port)
    head = ov.Model([s for s, _ in crossing.values() if s.get_node().get_type_name() != "Parameter"],
                    model.get_parameters(), "fp32_part")  # fmt: skip
    parameters = []
    for name, (source, consumers) in crossing.items():
        parameter = ov.opset13.parameter(source.get_partial_shape(), source.get_element_type(), name=name)
        parameter.output(0).set_names({name})
        for port in consumers:
            port.replace_source_output(parameter.output(0))
        parameters.append(parameter)
    return [(head, "f32"), (ov.Model(model.get_results(), parameters, "rest"), hint)]


def _writable(folder):
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None
