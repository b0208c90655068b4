"""Torch-free deployment: inference engines (ONNX Runtime, OpenVINO) and card-driven predictors. Never imports torch.

    from leanvision.runtime import load_predictor
    predictor = load_predictor("exported/retinanet", backend="openvino")
    detections = predictor([image_rgb])          # list[core.Detections], image pixels
    counter = load_predictor("exported/csrnet")  # the card's task picks the predictor
    maps = counter([image_rgb])                  # list[core.DensityMap]; maps[0].count
    classifier = load_predictor("exported/s1")   # list[core.ClassProbs]; .name, .score, .topk(5)
    s1 = load_ensemble(["exported/s1a", "exported/s1b", "exported/s1c"], overrides={"tta": "flip"})  # mean logits

The engine libraries are imported only when an engine is opened.
"""

from leanvision.runtime.classify import ClassifyPredictor, EnsemblePredictor, load_ensemble
from leanvision.runtime.count import CountPredictor
from leanvision.runtime.detect import DetectionPredictor, PostprocessOptions
from leanvision.runtime.engines import (
    Backend,
    Engine,
    EngineOptions,
    PerformanceHint,
    PrecisionHint,
    open_engine,
)
from leanvision.runtime.load import load_predictor

__all__ = [
    "Backend",
    "ClassifyPredictor",
    "CountPredictor",
    "DetectionPredictor",
    "Engine",
    "EngineOptions",
    "EnsemblePredictor",
    "PerformanceHint",
    "PostprocessOptions",
    "PrecisionHint",
    "load_ensemble",
    "load_predictor",
    "open_engine",
]
