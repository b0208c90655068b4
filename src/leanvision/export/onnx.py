"""Network body -> ONNX with torch 2.14's default (torch.export-based, "dynamo") exporter.

The legacy TorchScript exporter is deprecated in torch 2.14; the dynamo one is used for
every graph here, the `--with-nms` variant included (its NMS is a custom op translated to
ONNX `NonMaxSuppression`, see `export.nms_graph`). The batch axis is dynamic; height and
width stay static, as the model card states them. Node names are rewritten from the
exporter's `node_Conv_934` to module paths (`export.names`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from leanvision.core.deps import require
from leanvision.core.errors import ModelError
from leanvision.export.names import rename_nodes

INPUT_NAME = "images"
EXPORT_BATCH = 2  # torch.export specialises a size-1 dimension to a constant: trace with 2


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Errors only from `logger_name` while exporting: onnx_ir warns that an empty attribute
    list defaults to INTS, which is noise to a user of the CLI. The level is restored after."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _onnx() -> Any:
    return require("onnx", extra="train", purpose="ONNX export")


def export_onnx(
    module: Any,
    input_hw: tuple[int, int],
    path: Path,
    *,
    output_names: Sequence[str],
    custom_translation: Mapping[Any, Callable[..., Any]] | None = None,
) -> Any:
    """Export `module` (eval mode) for (N, 3, H, W) float32 input to `path`, nodes renamed.

    Args:
        module: a torch module whose forward takes one (N, 3, H, W) tensor.
        input_hw: static (height, width) of the input.
        path: the `.onnx` file to write (weights embedded, no external data).
        output_names: names of the graph outputs, in forward's return order.
        custom_translation: torch op -> onnxscript function, for custom ops.

    Returns:
        The saved `onnx.ModelProto`.

    Raises:
        ModelError: the exporter cannot trace or translate the module.
    """
    import torch

    onnx = _onnx()
    example = torch.zeros(EXPORT_BATCH, 3, *input_hw)
    try:
        with _quiet("onnx_ir"):
            program = torch.onnx.export(
                module, (example,), None, dynamo=True, verbose=False,
                input_names=[INPUT_NAME], output_names=list(output_names),
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                custom_translation_table=dict(custom_translation or {}),
            )
    except Exception as exc:  # torch.export / onnxscript raise many unrelated types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"ONNX export failed: {type(exc).__name__}: {first[:300]}") from exc
    proto = program.model_proto
    rename_nodes(proto.graph)
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path))
    return proto


def output_shapes(proto: Any) -> dict[str, tuple[int | str, ...]]:
    """{output name: shape} of an ONNX model; a dynamic dimension is its symbol, e.g. "batch"."""
    shapes = {}
    for output in proto.graph.output:
        dims = output.type.tensor_type.shape.dim
        shapes[output.name] = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims)
    return shapes
