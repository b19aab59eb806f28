"""Precision variants of an FP32 ONNX graph.

- FP16 with FP32 inputs and outputs (onnxconverter-common, ``keep_io_types``): what a
  TensorRT 11 strongly typed build consumes, and what ONNX Runtime's CUDA provider runs fast.
  Fragile parts stay FP32: sigmoids and softmax (probabilities near 0 and 1), and any node
  whose name carries one of ``keep_fp32`` (CE-Net's un-normalised DAC sum: ``dac``).
- INT8 for CPUs: ONNX Runtime static quantisation, QDQ format, per-channel weights, calibrated
  on preprocessed training images (screening devices often have no GPU).
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


def to_fp16(src: Path, dst: Path, *, keep_fp32: Iterable[str] = ()) -> Path:
    from onnxconverter_common import float16

    model = onnx.load(src)
    converted = float16.convert_float_to_float16(
        model,
        keep_io_types=True,
        op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST) + FP32_OPS,
        node_block_list=nodes_named(model, keep_fp32),
    )
    _fp32_outputs(converted)
    # The converter can leave stale FP16 types on tensors it did not cast (e.g. after a blocked node);
    # drop every recorded intermediate type and infer them again from the nodes themselves.
    del converted.graph.value_info[:]
    converted = onnx.shape_inference.infer_shapes(converted, strict_mode=True)
    onnx.checker.check_model(converted)
    onnx.save_model(converted, dst)
    return Path(dst)


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
            activation_type=QuantType.QInt8,
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
