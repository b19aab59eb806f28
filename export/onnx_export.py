"""PyTorch module -> checked ONNX file, with a dynamic batch axis and the preprocessing in its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch

from fundusrt.runtime.bundle import TensorSpec

MIN_OPSET = 18
MAX_PROTOBUF = 2 * 1024**3  # one file, no external data: ONNX's protobuf limit


def export_onnx(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    *,
    input_names: list[str],
    output_names: list[str],
    max_batch: int,
    metadata: dict,
    opset: int = MIN_OPSET,
) -> Path:
    """Export with the dynamo exporter; assert the opset, run onnx's full check, embed metadata.

    Weights are kept inside the .onnx (``external_data=False``): every graph here is far below
    the 2 GiB protobuf limit, and one file per graph is simpler to hash, copy and load.
    """
    module = module.eval()
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    program = torch.onnx.export(
        module,
        example,
        input_names=input_names,
        output_names=output_names,
        opset_version=opset,
        dynamic_shapes=tuple({0: batch} for _ in example),
        external_data=False,
        dynamo=True,
    )
    model = program.model_proto
    got = {o.domain: o.version for o in model.opset_import}.get("", 0)
    if got < MIN_OPSET:
        raise RuntimeError(f"{path}: exported opset {got}, expected >= {MIN_OPSET}")
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"fundusrt.{key}", json.dumps(value, sort_keys=True)
    if model.ByteSize() >= MAX_PROTOBUF:
        raise RuntimeError(f"{path}: {model.ByteSize()} bytes does not fit one protobuf; split the graph")
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    onnx.save_model(model, path)
    return path


def tensor_specs(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Input and output names, shapes ("batch" for the dynamic axis) and dtypes, read from the graph."""
    model = onnx.load(path, load_external_data=False)

    def spec(value):
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
        return TensorSpec(value.name, tuple("batch" if isinstance(d, str) else d for d in dims), dtype)

    return tuple(spec(v) for v in model.graph.input), tuple(spec(v) for v in model.graph.output)


def opset_of(path: Path) -> int:
    model = onnx.load(path, load_external_data=False)
    return {o.domain: o.version for o in model.opset_import}.get("", 0)
