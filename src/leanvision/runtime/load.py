"""Open an exported model directory as the predictor of its card's task.

    predictor = load_predictor("exported/retinanet")       # model file + model_card.json
    detections = predictor([image_rgb])                     # a detector: list[Detections]
    counter = load_predictor("exported/csrnet")             # a counter: list[DensityMap]

The card's task picks the predictor class from the task table (`core.tasks.DEPLOY_TASKS`);
this module names no task.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from leanvision.core.card import ModelCard
from leanvision.core.errors import ConfigError, ModelError
from leanvision.core.protocols import StagedPredictor
from leanvision.core.tasks import deploy_task, load_object
from leanvision.runtime.engines import Backend, EngineOptions, PrecisionHint, open_engine
from leanvision.runtime.engines.base import as_backend


def find_model_file(model_dir: Path, backend: Backend | None) -> Path:
    """The model file in `model_dir`: `model.xml` (OpenVINO IR) if present, else `model.onnx`.

    With backend="onnxruntime" only `model.onnx` qualifies.
    """
    names = ("model.onnx",) if backend is Backend.ONNXRUNTIME else ("model.xml", "model.onnx")
    for name in names:
        if (model_dir / name).is_file():
            return model_dir / name
    raise ModelError(f"no model file in the model directory (expected {' or '.join(names)})", path=model_dir)


def fallback_precision(card: ModelCard) -> PrecisionHint:
    """The precision `leanvision quantize --fallback` chose for the layers it kept out of INT8
    (bf16 only where the CPU runs it), recorded in the card; FP32 for any other model."""
    try:
        facts = json.loads(card.provenance.get("quantization", "{}"))
        return PrecisionHint(facts.get("fallback_precision", "fp32"))
    except (ValueError, AttributeError):
        return PrecisionHint.FP32


def load_predictor(
    model_dir: str | os.PathLike[str],
    *,
    backend: Backend | str | None = None,
    options: EngineOptions | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> StagedPredictor:
    """Open an exported model directory (model file + `model_card.json`) as the predictor of
    its card's task (`core.tasks.DEPLOY_TASKS`): a `runtime.detect.DetectionPredictor` (detect),
    a `runtime.count.CountPredictor` (count).

    Raises:
        ModelError: missing or corrupt model or card, or a card that disagrees with the model.
        ConfigError: an unknown backend or override (counting models take no overrides), or
            a task that cannot be deployed.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError("model directory not found", path=model_dir)
    card = ModelCard.load(model_dir)
    predictor_class = load_object(deploy_task(card.task).predictor)
    chosen = as_backend(backend)
    model_file = find_model_file(model_dir, chosen)
    if options is None and model_file.suffix == ".xml":
        options = EngineOptions(precision=fallback_precision(card))
    engine = open_engine(model_file, backend=chosen, options=options)
    try:
        return predictor_class(engine, card, overrides=overrides)
    except (ModelError, ConfigError):
        engine.close()
        raise
