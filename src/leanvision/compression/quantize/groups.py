"""Which nodes `--keep-fp32` names: regexes on node names or the card's named groups.

A *layer* is one weighted operation of the exported graph (a convolution or a matrix
product) that INT8 quantization would run in integer arithmetic; its name is the ONNX node
name the exporter gave it (`fpn.inner_blocks.0.0/Conv`, the shared head's repeats
`head.classification_head.conv.0.0/Conv_3`). OpenVINO's IR names a convolution with a bias
`<name>/WithoutBiases`: such a layer answers to both names. A pattern is either a group name
of `card.layer_groups` ("fpn" means the card's regex for the FPN) or a regular expression
that must match a whole node name (`re.fullmatch`). A pattern that names no node is an
error that lists the closest names (difflib), never a silent no-op.

Patterns select *nodes* of any kind, so `--keep-fp32 fpn` leaves the whole FPN in floating
point: its convolutions, and also its additions and resizes, whose inputs the quantizers
would otherwise round (S0's "FPN in FP32"). Sensitivity and the accuracy budget work on
layers, the unit that costs or saves INT8 time.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping, Sequence

from leanvision.core.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Node:
    """One operation of the graph.

    Attributes:
        name: the node name users see (the ONNX node name; `/WithoutBiases` removed in an IR).
        node: the node's name in the backend's graph (NNCF and ONNX Runtime address it so).
        op: the backend's operation type (Conv, Convolution, GroupConvolution, Add, ...).
        group: the card's layer group it belongs to ("" if none).
        is_layer: a weighted operation INT8 runs in integer arithmetic (conv, matmul).
    """

    name: str
    node: str
    op: str
    group: str = ""
    is_layer: bool = False

    def answers_to(self, pattern: re.Pattern[str]) -> bool:
        return bool(pattern.fullmatch(self.name) or pattern.fullmatch(self.node))


def group_of(name: str, groups: Mapping[str, str]) -> str:
    """The first group of `groups` ({group: regex}) whose regex matches `name` whole."""
    for group, regex in groups.items():
        if re.fullmatch(regex, name):
            return group
    return ""


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--keep-fp32 {pattern!r} is not a valid regular expression: {exc}") from None


def _no_match(pattern: str, nodes: Sequence[Node], groups: Mapping[str, str]) -> ConfigError:
    names = list(dict.fromkeys(node.name for node in nodes))
    close = difflib.get_close_matches(pattern, names, n=5, cutoff=0.3)
    if not close:  # a regex rarely resembles a name: compare with its literal characters
        literal = re.sub(r"[\\^$.*+?()\[\]{}|]", "", pattern)
        close = difflib.get_close_matches(literal, names, n=5, cutoff=0.0)
    known = f"; groups: {', '.join(groups)}" if groups else ""
    return ConfigError(f"--keep-fp32 {pattern!r} matches no node name (whole-name regex); closest: "
                       f"{', '.join(close) or 'none'}{known}")


def resolve(patterns: Sequence[str], nodes: Sequence[Node], groups: Mapping[str, str]) -> list[Node]:
    """The nodes named by `patterns` (group names or whole-name regexes), in graph order.

    Raises:
        ConfigError: a pattern is not a valid regex, or names no node.
    """
    chosen: set[str] = set()
    for pattern in patterns:
        regex = _compile(groups.get(pattern, pattern))
        hits = [node.node for node in nodes if node.answers_to(regex)]
        if not hits:
            raise _no_match(pattern, nodes, groups)
        chosen.update(hits)
    return [node for node in nodes if node.node in chosen]


def feature_source(order: Sequence[tuple[str, Sequence[str]]], groups: Mapping[str, str]) -> str:
    """The last node (in graph order) of the "backbone" group that feeds another group (the
    FPN): the backbone's deepest output (C5 for a RetinaNet), whose pooled activations
    describe an image for calibration selection.

    Args:
        order: (node name, names of the nodes consuming its output), in topological order.
        groups: the card's layer groups; needs "backbone" and at least one other.

    Raises:
        ConfigError: no backbone group, or no backbone node feeds another group.
    """
    backbone = groups.get("backbone")
    others = [regex for group, regex in groups.items() if group != "backbone"]
    if backbone is None or not others:
        raise ConfigError("calibration selection by features needs the card's 'backbone' layer group and "
                          f"another group after it (card groups: {', '.join(groups) or 'none'})")
    found = ""
    for name, consumers in order:
        if re.fullmatch(backbone, name) and any(re.fullmatch(o, c) for o in others for c in consumers):
            found = name
    if not found:
        raise ConfigError(f"no node of the backbone group ({backbone}) feeds another layer group")
    return found
