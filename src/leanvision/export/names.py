"""Readable, unique ONNX node names from module paths, and regexes naming the model's parts.

torch 2.14's (dynamo) ONNX exporter names nodes `node_Conv_934`, which no exclusion rule
can address. Each node does carry where it came from: `pkg.torch.onnx.name_scopes`, the
module stack as a Python list literal (`['', 'backbone', 'backbone.body', ...,
'backbone.body.0.1', '_native_batch_norm_legit_no_training']`), and the same as a
`namespace` string. `rename_nodes` names every node `<module path>/<op type>` with `_1`,
`_2`... on repeats (RetinaNet's shared head runs once per pyramid level):

    backbone.body.3.conv.0.0/Conv      head.classification_head.conv.0.0/Conv_4

A convolution is named after the module that owns its weight (the weight initializer keeps
the state-dict key, `backbone.body.3.conv.0.0.weight`), not after its scope: the exporter's
optimiser folds BatchNorm into the preceding Conv and the fused node inherits the
*BatchNorm's* scope (`...conv.0.1`), which would name a convolution after a norm layer.

OpenVINO keeps these names as friendly names when it converts the ONNX file; a Conv with
a bias becomes `<name>/WithoutBiases` (Convolution) followed by `<name>` (Add).
`group_patterns` turns `model.parts` into one regex per part that matches both.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

SCOPES_KEY = "pkg.torch.onnx.name_scopes"
NAMESPACE_KEY = "namespace"
WEIGHT_SUFFIX = ".weight"


def _scopes(node: Any) -> list[str]:
    """The module stack of an ONNX node, outermost first, without the op's own name."""
    meta = {p.key: p.value for p in node.metadata_props}
    if SCOPES_KEY in meta:
        try:
            scopes = ast.literal_eval(meta[SCOPES_KEY])
        except (ValueError, SyntaxError):
            scopes = None
        if isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
            return scopes[:-1]
    if NAMESPACE_KEY in meta:  # ": Root/backbone: Class/.../op: aten.op" -> module paths
        return [part.rpartition(": ")[0] for part in meta[NAMESPACE_KEY].split("/")[:-1]]
    return []


def module_path(node: Any, initializers: set[str]) -> str:
    """The dotted path of the module an ONNX node belongs to ("" for the root).

    Args:
        node: an `onnx.NodeProto` exported by torch.onnx (dynamo).
        initializers: names of the graph's initializers.
    """
    for name in node.input:
        if name in initializers and name.endswith(WEIGHT_SUFFIX):
            return name.removesuffix(WEIGHT_SUFFIX)
    scopes = [s for s in _scopes(node) if s and not s.startswith("_")]
    return scopes[-1] if scopes else ""


def rename_nodes(graph: Any) -> dict[str, str]:
    """Rename every node of an ONNX graph in place to `<module path>/<op type>[_k]`.

    Names are unique within the graph; tensors are not renamed (only node names change,
    so the graph stays valid). Returns {old name: new name}.
    """
    initializers = {init.name for init in graph.initializer}
    seen: Counter[str] = Counter()
    renamed = {}
    for node in graph.node:
        base = f"{module_path(node, initializers)}/{node.op_type}"
        count = seen[base]
        seen[base] += 1
        new = base if count == 0 else f"{base}_{count}"
        renamed[node.name] = new
        node.name = new
    return renamed


def group_patterns(parts: Mapping[str, str]) -> dict[str, str]:
    """One regex per named part: `{"fpn": "^fpn[./].*"}` for `parts = {"fpn": "fpn"}`.

    A pattern matches the nodes of that submodule and of its children, in an ONNX graph
    renamed by `rename_nodes` and in an OpenVINO IR converted from it (friendly names,
    `/WithoutBiases` suffixes included), with `re.match`, `re.fullmatch` or `re.search`.
    """
    return {group: f"^{re.escape(module)}[./].*" for group, module in parts.items()}


def group_of(name: str, patterns: Mapping[str, str]) -> list[str]:
    """The groups whose pattern matches `name` (one for a well-formed partition)."""
    return [group for group, pattern in patterns.items() if re.fullmatch(pattern, name)]


def unmatched(names: Iterable[str], patterns: Mapping[str, str]) -> list[str]:
    """The names no group's pattern matches."""
    return [name for name in names if not group_of(name, patterns)]
