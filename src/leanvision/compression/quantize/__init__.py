"""Post-training INT8 quantization with an accuracy budget (torch world, torch not imported).

    from leanvision.compression.quantize import BudgetOptions, QuantizeOptions, quantize
    result = quantize("exported/s0", calib="data/train", val="data/val", backend="openvino",
                      out="exported/s0-int8", options=QuantizeOptions(budget=BudgetOptions(keep_fp32=("fpn",))))

Backends (ports and adapters, one module each, libraries imported on use): OpenVINO through
NNCF (`openvino_nncf`) and ONNX Runtime static QDQ (`onnxruntime_qdq`). Calibration images
are chosen at random, for diversity or for similarity (`select`), layers are ranked by
sensitivity (`sensitivity`), an accuracy budget picks the layers kept in FP32 (`budget`),
and the report states the measured accuracy and throughput on this CPU (`hardware`,
`speed`, `report`). See docs/quantization.md.
"""

from leanvision.compression.quantize.api import QuantizeResult, quantize
from leanvision.compression.quantize.options import (
    AdvancedOptions,
    BudgetOptions,
    CalibrationOptions,
    CalibSelect,
    Fallback,
    OrtMethod,
    Preset,
    QuantizeOptions,
    SpeedOptions,
)

__all__ = [
    "AdvancedOptions",
    "BudgetOptions",
    "CalibSelect",
    "CalibrationOptions",
    "Fallback",
    "OrtMethod",
    "Preset",
    "QuantizeOptions",
    "QuantizeResult",
    "SpeedOptions",
    "quantize",
]
