"""Torch-free deployment: inference engines (ONNX Runtime, OpenVINO) and card-driven predictors. Never imports torch.

    from leanvision.runtime import load_predictor
    predictor = load_predictor("exported/retinanet", backend="openvino")
    detections = predictor([image_rgb])          # list[core.Detections], image pixels

The engine libraries are imported only when an engine is opened.
"""

from leanvision.runtime.engines import (
    Backend,
    Engine,
    EngineOptions,
    PerformanceHint,
    PrecisionHint,
    open_engine,
)
from leanvision.runtime.predictor import DetectionPredictor, PostprocessOptions, load_predictor

__all__ = [
    "Backend",
    "DetectionPredictor",
    "Engine",
    "EngineOptions",
    "PerformanceHint",
    "PostprocessOptions",
    "PrecisionHint",
    "load_predictor",
    "open_engine",
]
