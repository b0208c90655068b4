"""--keep-fp32: group names and whole-name regexes; unmatched patterns list close names."""

from __future__ import annotations

import pytest

from leanvision.compression.quantize.groups import Node, feature_source, group_of, resolve
from leanvision.core import ConfigError

GROUPS = {"backbone": "^backbone[./].*", "fpn": "^fpn[./].*", "head": "^head[./].*"}


def _node(name: str, op: str = "Convolution", *, ir: bool = True) -> Node:
    layer = op in ("Convolution", "Conv")
    node = f"{name}/WithoutBiases" if ir and layer else name
    return Node(name, node, op, group_of(name, GROUPS), layer)


NODES = [
    _node("backbone.body.0.0/Conv"),
    _node("backbone.body.18.2/Clip", "Minimum"),
    _node("fpn.inner_blocks.0.0/Conv"),
    _node("fpn.inner_blocks.1.0/Conv"),
    _node("fpn/Add", "Add"),
    _node("head.classification_head.conv.0.0/Conv"),
    _node("head.classification_head.conv.0.0/Conv_1"),
]


def test_a_group_name_selects_the_group_whole():
    assert [n.name for n in resolve(["fpn"], NODES, GROUPS)] == [
        "fpn.inner_blocks.0.0/Conv", "fpn.inner_blocks.1.0/Conv", "fpn/Add"]


def test_a_regex_must_match_the_whole_name():
    picked = resolve([r"head\.classification_head\.conv\.0\.0/Conv"], NODES, GROUPS)
    assert [n.name for n in picked] == ["head.classification_head.conv.0.0/Conv"]  # not Conv_1
    picked = resolve([r"head\..*/Conv(_\d+)?"], NODES, GROUPS)
    assert len(picked) == 2


def test_the_ir_name_with_withoutbiases_answers_too():
    picked = resolve([r"fpn\.inner_blocks\.0\.0/Conv/WithoutBiases"], NODES, GROUPS)
    assert [n.node for n in picked] == ["fpn.inner_blocks.0.0/Conv/WithoutBiases"]


def test_patterns_combine_without_duplicates_in_graph_order():
    picked = resolve(["head", "fpn", r"fpn/Add"], NODES, GROUPS)
    assert [n.name for n in picked] == [n.name for n in NODES[2:]]


def test_an_unmatched_pattern_is_an_error_listing_close_names():
    with pytest.raises(ConfigError) as info:
        resolve(["fpn.inner_block.0.0/Conv"], NODES, GROUPS)
    message = str(info.value)
    assert "matches no node" in message and "fpn.inner_blocks.0.0/Conv" in message
    assert "groups: backbone, fpn, head" in message


def test_an_invalid_regex_is_an_error():
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        resolve(["fpn[("], NODES, GROUPS)


def test_feature_source_is_the_last_backbone_node_feeding_another_group():
    order = [("backbone.body.0.0/Conv", ["backbone.body.1/Conv", "ShapeOf_1"]),
             ("backbone.body.6/Add", ["fpn.inner_blocks.0.0/Conv", "backbone.body.7/Conv"]),
             ("backbone.body.18.2/Clip", ["fpn.inner_blocks.2.0/Conv", "fpn.extra_blocks.p6/Conv"]),
             ("fpn.inner_blocks.2.0/Conv", ["fpn/Add"])]
    assert feature_source(order, GROUPS) == "backbone.body.18.2/Clip"
    with pytest.raises(ConfigError, match="backbone"):
        feature_source(order, {"fpn": GROUPS["fpn"]})
