import pytest
from conftest import graph_spec

from fundusrt.export.engines import (
    EngineBuildUnavailable,
    build_engines,
    build_plan,
    profile_shapes,
    tensorrt_builder_available,
)
from fundusrt.runtime.bundle import TensorSpec
from fundusrt.runtime.cli import main

SPEC = graph_spec(
    [TensorSpec("full", ("batch", 3, 256, 256), "float32"), TensorSpec("crop", ("batch", 3, 256, 256), "float32")],
    [TensorSpec("probability", ("batch",), "float32")],
    {},
)


def test_profile_spans_the_batch_axis_only():
    shapes = profile_shapes(SPEC, max_batch=64, opt_batch=8)
    assert shapes == {
        "full": ((1, 3, 256, 256), (8, 3, 256, 256), (64, 3, 256, 256)),
        "crop": ((1, 3, 256, 256), (8, 3, 256, 256), (64, 3, 256, 256)),
    }
    with pytest.raises(ValueError):
        profile_shapes(SPEC, max_batch=4, opt_batch=8)


def test_build_plan_follows_the_tensorrt_version():
    assert build_plan(10, "fp16") == ("fp32", False, True)  # FP16 builder flag on the FP32 graph
    assert build_plan(11, "fp16") == ("fp16", True, False)  # strongly typed build of the FP16 graph
    assert build_plan(10, "fp32") == ("fp32", False, False)
    assert build_plan(11, "fp32") == ("fp32", True, False)


@pytest.mark.skipif(tensorrt_builder_available(), reason="TensorRT is installed here")
def test_without_tensorrt_build_engines_says_so_and_exits_2(tmp_path, capsys):
    with pytest.raises(EngineBuildUnavailable, match="TensorRT"):
        build_engines(tmp_path)
    assert main(["build-engines", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fundusrt build-engines:") and "\n" not in err
