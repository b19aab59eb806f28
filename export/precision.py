"""Precision variants of an FP32 ONNX graph.

- FP16 with FP32 inputs and outputs (onnxconverter-common, ``keep_io_types``): what a
  TensorRT 11 strongly typed build consumes, and what ONNX Runtime's CUDA provider runs fast.
  Fragile parts stay FP32: sigmoids and softmax (probabilities near 0 and 1), any node
  whose name carries one of ``keep_fp32`` (CE-Net's un-normalised DAC sum: ``dac``), and every
  node computing the ``fp32_until`` tensors (the classifier's high-resolution first layers: the
  same FP32 part BF16 keeps).
- INT8 for CPUs: ONNX Runtime static quantisation, QDQ format, per-channel signed weights and
  unsigned (u8, asymmetric) activations, calibrated on preprocessed training images (screening
  devices often have no GPU). U8 activations, because x86's INT8 dot product (AVX-512 VNNI's
  vpdpbusd) multiplies u8 by s8: OpenVINO ran signed activations on an AMD Zen 4 (VNNI, no AMX)
  30 times less exactly than ONNX Runtime (the phantom locator's map 0.063 from FP32 on average, 0.26
  at worst, its fovea found differently), and with u8 as exactly (0.002, 0.027); Intel's AMX takes
  s8 by s8, which is why signed activations passed there.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx

FP32_OPS = ["Sigmoid", "Softmax"]


def _scopes(node: onnx.NodeProto) -> list[str]:
    """The PyTorch module paths a node was exported from, outermost first (``pkg.torch.onnx.name_scopes``)."""
    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "[]")
    return [scope for scope in ast.literal_eval(scopes) if scope]


def module_outputs(model: onnx.ModelProto, module: str) -> list[str]:
    """The tensors leaving each module whose path ends in ``module`` (``"layer2.0"``: one per member
    of the ensemble), in graph order: what the module's nodes produce for nodes outside it."""
    inside: dict[str, set[str]] = {}  # module path -> the tensors its nodes produce
    for node in model.graph.node:
        for path in _scopes(node):
            if f".{path}".endswith(f".{module}"):
                inside.setdefault(path, set()).update(node.output)
    leaving = []
    graph_outputs = {o.name for o in model.graph.output}
    for produced in inside.values():
        used_outside = {i for n in model.graph.node if not produced.issuperset(n.output) for i in n.input}
        leaving += [t for n in model.graph.node for t in n.output if t in produced & (used_outside | graph_outputs)]
    return leaving


def nodes_named(model: onnx.ModelProto, modules: Iterable[str]) -> list[str]:
    """Names of the nodes exported from the PyTorch modules named (``"dac"``, ``"head.4"``): any
    module path whose dotted components contain the name's. The exporter records module paths in
    ``pkg.torch.onnx.name_scopes``; other metadata (stack traces) is not looked at, as source lines
    name neighbouring modules too."""
    wanted = [f".{m.strip('.')}." for m in modules]
    hits = []
    for node in model.graph.node:
        paths = [f".{scope}." for scope in _scopes(node)]
        if any(w in path for w in wanted for path in paths):
            hits.append(node.name)
    return hits


def nodes_computing(model: onnx.ModelProto, tensors: Iterable[str]) -> list[str]:
    """Names of the nodes the ``tensors`` depend on (their producers, theirs, and so on to the inputs)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    seen, stack = {}, [producers[t] for t in tensors if t in producers]
    while stack:
        node = stack.pop()
        if node.name not in seen:
            seen[node.name] = node
            stack += [producers[i] for i in node.input if i in producers]
    return list(seen)


def to_fp16(src: Path, dst: Path, *, keep_fp32: Iterable[str] = (), fp32_until: Iterable[str] = ()) -> Path:
    from onnxconverter_common import float16

    model = onnx.load(src)
    converted = float16.convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST) + FP32_OPS,
        node_block_list=nodes_named(model, keep_fp32) + nodes_computing(model, fp32_until),
    )
    _fp32_outputs(converted)
    _fp32_weights(converted, model)
    # The converter can leave stale FP16 types on tensors it did not cast (e.g. after a blocked node);
    # drop every recorded intermediate type and infer them again from the nodes themselves.
    del converted.graph.value_info[:]
    converted = onnx.shape_inference.infer_shapes(converted, strict_mode=True)
    onnx.checker.check_model(converted)
    onnx.save_model(converted, dst)
    return Path(dst)


def _fp32_weights(converted: onnx.ModelProto, original: onnx.ModelProto) -> None:
    """Give the nodes kept FP32 their FP32 weights. The converter stores every weight in FP16 and casts
    it back up for them, so they would compute with rounded weights: the classifier's probability moved
    0.0044 with its first layers "kept FP32" so (0.0056 all FP16), as much as with the whole network kept."""
    originals = {i.name: i for i in original.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    stored = {i.name: i for i in converted.graph.initializer}
    restored = {}
    for node in converted.graph.node:
        source = node.input[0] if node.op_type == "Cast" and node.input else None
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if source in originals and to == onnx.TensorProto.FLOAT and stored[source].data_type == onnx.TensorProto.FLOAT16:
            if source not in restored:
                weight = onnx.TensorProto()
                weight.CopyFrom(originals[source])
                weight.name = restored[source] = f"{source}_fp32"
                converted.graph.initializer.append(weight)
            node.op_type, node.input[0] = "Identity", restored[source]
            del node.attribute[:]
    used = {i for node in converted.graph.node for i in node.input}
    kept = [i for i in converted.graph.initializer if i.name in used]
    del converted.graph.initializer[:]
    converted.graph.initializer.extend(kept)


def _fp32_outputs(model: onnx.ModelProto) -> None:
    """Keep graph outputs FP32. The converter casts a blocked (FP32) node that feeds a graph
    output back to FP16 despite ``keep_io_types``; turn that cast into FP32, or add one."""
    producers = {out: node for node in model.graph.node for out in node.output}
    for output in model.graph.output:
        if output.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        node = producers.get(output.name)
        if node is not None and node.op_type == "Cast":
            for attribute in node.attribute:
                if attribute.name == "to":
                    attribute.i = onnx.TensorProto.FLOAT
        else:
            inner = output.name + "_fp16"
            for n in model.graph.node:
                n.output[:] = [inner if o == output.name else o for o in n.output]
            model.graph.node.append(onnx.helper.make_node("Cast", [inner], [output.name], to=onnx.TensorProto.FLOAT))
        output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over input dicts, one image per call, with the
    ``__len__`` / ``set_range`` that its strided MinMax calibration uses: ONNX Runtime keeps what
    it collects until a stride ends, and five ResNet50s at 512² over 16 images exceed 24 GiB."""

    def __init__(self, batches: Iterable[dict[str, np.ndarray]]):
        self._images = [
            {name: array[i : i + 1] for name, array in batch.items()}
            for batch in batches
            for i in range(len(next(iter(batch.values()))))
        ]
        self._next, self._end = 0, len(self._images)

    def __len__(self) -> int:
        return len(self._images)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self._images))

    def get_next(self):
        if self._next >= self._end:
            return None
        self._next += 1
        return self._images[self._next - 1]

    def rewind(self):  # pragma: no cover - ORT calls it for some calibration methods only
        self._next, self._end = 0, len(self._images)


def to_int8(src: Path, dst: Path, calibration: Iterable[dict[str, np.ndarray]], *, exclude: Iterable[str] = ()) -> Path:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst = Path(dst)
    prepared = dst.with_suffix(".prep.onnx")
    quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    try:
        model = onnx.load(prepared)
        quantize_static(
            str(prepared),
            str(dst),
            _Calibration(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,  # u8 x s8: what x86 INT8 kernels multiply (module docstring)
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=None,
            nodes_to_exclude=nodes_named(model, exclude),
            # fold the ranges after every image, so memory stays that of one image's activations
            extra_options={"ActivationSymmetric": False, "CalibStridedMinMax": 1},
        )
    finally:
        prepared.unlink(missing_ok=True)
    return dst
