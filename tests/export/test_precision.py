import onnx
from onnx import helper

from fundusrt.export.precision import nodes_named


def _node(name, scopes, stack=""):
    node = helper.make_node("Relu", ["x"], [name + "_out"], name=name)
    for key, value in (("pkg.torch.onnx.name_scopes", repr(scopes)), ("pkg.torch.onnx.stack_trace", stack)):
        entry = node.metadata_props.add()
        entry.key, entry.value = key, value
    return node


def test_nodes_are_found_by_module_path_not_by_source_lines():
    model = helper.make_model(
        helper.make_graph(
            [
                _node("a", ["", "model", "model.dac", "model.dac.dilate1"]),
                # the encoder's node: its stack trace names self.dac, its module path does not
                _node("b", ["", "model", "model.encoder4"], "e4 = self.rmp(self.dac(self.encoder4(e3)))"),
                _node("c", ["", "model", "model.head", "model.head.4"]),
                _node("d", ["", "model", "model.head", "model.head.42"]),
            ],
            "g",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [],
        )
    )
    assert nodes_named(model, ["dac"]) == ["a"]
    assert nodes_named(model, ["head.4"]) == ["c"]
    assert nodes_named(model, ["stem"]) == []
