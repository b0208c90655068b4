"""Types and helpers shared by every part of leanvision. Imports only stdlib and numpy."""

from leanvision.core.card import (
    CARD_FILENAME,
    AnchorSpec,
    BoxCoderSpec,
    InputSpec,
    ModelCard,
    OutputSpec,
    PostprocessSpec,
)
from leanvision.core.classes import ClassProbs
from leanvision.core.config import Config
from leanvision.core.density import DensityKernel, DensityMap, DensitySpec
from leanvision.core.detections import Detections
from leanvision.core.enums import NmsKind, Precision, ResizeMode, Task
from leanvision.core.errors import (
    ConfigError,
    DataError,
    LeanVisionError,
    MissingExtraError,
    ModelError,
)
from leanvision.core.protocols import Predictor, Prepared, RawOutputs, StagedPredictor

__all__ = [
    "CARD_FILENAME",
    "AnchorSpec",
    "BoxCoderSpec",
    "ClassProbs",
    "Config",
    "ConfigError",
    "DataError",
    "DensityKernel",
    "DensityMap",
    "DensitySpec",
    "Detections",
    "InputSpec",
    "LeanVisionError",
    "MissingExtraError",
    "ModelCard",
    "ModelError",
    "NmsKind",
    "OutputSpec",
    "PostprocessSpec",
    "Precision",
    "Predictor",
    "Prepared",
    "RawOutputs",
    "ResizeMode",
    "StagedPredictor",
    "Task",
]
