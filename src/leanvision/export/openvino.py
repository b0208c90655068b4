"""ONNX -> OpenVINO IR (`model.xml` + `model.bin`), FP32 weights, names and dynamic batch kept.

The IR is converted from the renamed ONNX file (not from the torch module) so both files
share node names: OpenVINO's ONNX frontend keeps each node's name as the friendly name of
the operation it becomes, and the card's `layer_groups` regexes address both.
`ov.save_model` would halve the weights to fp16 by default; `compress_to_fp16=False` keeps
them FP32 (the FP32 baseline and NNCF's INT8 calibration both need the real weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leanvision.core.deps import require
from leanvision.core.errors import ModelError


def _openvino() -> Any:
    return require("openvino", extra="deploy", purpose="OpenVINO export")


def onnx_to_ir(onnx_path: Path, xml_path: Path) -> None:
    """Convert `onnx_path` to an IR at `xml_path` (and its `.bin`), weights in FP32."""
    ov = _openvino()
    try:
        model = ov.convert_model(str(onnx_path))
        ov.save_model(model, str(xml_path), compress_to_fp16=False)
    except Exception as exc:  # OpenVINO's conversion errors share no public base class
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ModelError(f"OpenVINO conversion failed: {(lines or [type(exc).__name__])[-1][:300]}",
                         path=onnx_path) from exc


def ir_operations(xml_path: Path) -> list[tuple[str, str]]:
    """(type name, friendly name) of every operation of an IR, in topological order."""
    ov = _openvino()
    model = ov.Core().read_model(str(xml_path))
    return [(op.get_type_name(), op.get_friendly_name()) for op in model.get_ordered_ops()]


def ir_weight_types(xml_path: Path) -> set[str]:
    """Element types of the IR's floating-point constants (weights), e.g. {"f32"}."""
    ov = _openvino()
    model = ov.Core().read_model(str(xml_path))
    types = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant":
            element = op.get_output_element_type(0)
            if element.is_real():
                types.add(element.get_type_name())
    return types
