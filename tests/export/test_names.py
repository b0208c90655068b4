"""Node renaming and part regexes on hand-built graphs (no export needed)."""

from __future__ import annotations

import re

from onnx import TensorProto, helper

from leanvision.export.names import group_of, group_patterns, rename_nodes, unmatched

SCOPES = "pkg.torch.onnx.name_scopes"


def node(op: str, inputs: list[str], *, scopes: str | None = None, namespace: str | None = None, name: str = ""):
    made = helper.make_node(op, inputs, [f"{name or op}_out"], name=name or f"node_{op}_1")
    for key, value in ((SCOPES, scopes), ("namespace", namespace)):
        if value is not None:
            entry = made.metadata_props.add()
            entry.key, entry.value = key, value
    return made


def graph(nodes):
    weight = helper.make_tensor("backbone.body.0.0.weight", TensorProto.FLOAT, [1], [1.0])
    return helper.make_graph(nodes, "g", [], [], initializer=[weight])


def test_names_come_from_weights_then_scopes_then_namespace_and_are_unique():
    g = graph([
        # BatchNorm folded into the conv: its scope is the norm layer's, its weight the conv's.
        node("Conv", ["images", "backbone.body.0.0.weight"],
             scopes="['', 'backbone', 'backbone.body', 'backbone.body.0', 'backbone.body.0.1', 'bn']", name="a"),
        node("Relu", ["x"], scopes="['', 'head', 'head.conv', 'relu']", name="b"),
        node("Relu", ["x"], scopes="['', 'head', 'head.conv', 'relu_1']", name="c"),
        node("Add", ["x", "y"], namespace=": pkg.M/fpn: torchvision.ops.FPN/add: aten.add.Tensor", name="d"),
        node("Shape", ["x"], scopes="['_empty_nn_module_stack_from_metadata_hook', 'sym_size']", name="e"),
        node("Concat", ["x"], name="f"),
    ])
    renamed = rename_nodes(g)
    assert [n.name for n in g.node] == [
        "backbone.body.0.0/Conv", "head.conv/Relu", "head.conv/Relu_1", "fpn/Add", "/Shape", "/Concat"]
    assert renamed["a"] == "backbone.body.0.0/Conv"
    assert g.node[0].output[0] == "a_out"  # tensors keep their names


def test_group_patterns_match_a_part_and_its_children_only():
    patterns = group_patterns({"backbone": "backbone", "fpn": "fpn", "head": "model.head"})
    assert patterns["head"] == r"^model\.head[./].*"
    names = ["backbone.body.0.0/Conv", "backbone.body.0.0/Conv/WithoutBiases", "fpn/Add", "fpn.layer_blocks.0.0/Conv",
             "model.head.cls/Conv_4"]
    for name in names:
        assert len(group_of(name, patterns)) == 1, name
        groups = [g for g, p in patterns.items() if re.match(p, name) and re.search(p, name)]
        assert groups == group_of(name, patterns)
    assert unmatched(["fpnx.conv/Conv", "backbone_extra/Conv", "/Concat", "model.headless/Conv", "xbackbone.a/Conv"],
                     patterns) == ["fpnx.conv/Conv", "backbone_extra/Conv", "/Concat", "model.headless/Conv",
                                   "xbackbone.a/Conv"]
