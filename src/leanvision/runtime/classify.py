"""Card-driven classification predictor: images -> engine -> `ClassProbs` per image.

    predictor = ClassifyPredictor(engine, card)                     # card task classify
    probs = predictor([image_rgb])                                  # list[ClassProbs]
    probs[0].name, probs[0].score, probs[0].topk(5)
    ClassifyPredictor(engine, card, overrides={"tta": "flip"})      # image + mirror, logits averaged

Preprocessing is every predictor's (`runtime.preprocess.prepare_images`: the card's resize
mode, typically centre crop, channel order, normalisation). The model's output (the card's
first output, default `logits`) is (N, C) class logits, C = len(card.class_names).

Flip test-time augmentation runs each image and its horizontal mirror and averages their
logits. Only the image region of the model input is mirrored, columns [0, W - pad_x): a
letterboxed image keeps its padding on the right, where the model saw padding in training,
so the mirrored row is what preprocessing the mirrored image gives (exactly without a
resize, up to the resize's rounding with one). With centre crop or stretch the image fills
the input and the whole input is mirrored.

With flip, `preprocess` returns a `Prepared` whose batch holds 2N rows (image i at row 2i,
its mirror at 2i + 1) while `sizes` and `transforms` stay one per image; `postprocess`
averages the pairs. So any runner (`__call__`, the large-image pipeline, `leanvision bench`)
counts images by `sizes` and an image costs two model rows; code that slices a `Prepared`
by image must slice its batch by twice that (export parity does, but runs without overrides).
The predictor is pure; the engine is its only state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.card import CARD_FILENAME, ModelCard
from leanvision.core.classes import ClassProbs
from leanvision.core.enums import Task
from leanvision.core.errors import ConfigError, ModelError
from leanvision.core.letterbox import FitTransform
from leanvision.core.protocols import Prepared, RawOutputs
from leanvision.runtime.engines import Engine
from leanvision.runtime.preprocess import EnginePredictor, ImageInput, check_engine

DEFAULT_OUTPUT = "logits"


class Tta(enum.StrEnum):
    NONE = "none"
    FLIP = "flip"  # the image and its horizontal mirror, logits averaged


class ClassifyPredictor(EnginePredictor):
    """A `StagedPredictor` for image classifiers.

    Args:
        engine: runs the model; one output (the card's first, default `logits`), (N, C).
        card: the model's card, task classify.
        overrides: {"tta": "none" | "flip"}; see the module docstring for flip.

    Raises:
        ModelError: the card is not a classification card or disagrees with the model.
        ConfigError: an override other than `tta`, a value it does not take, or flip with a
            model whose batch size is fixed.
    """

    def __init__(self, engine: Engine, card: ModelCard, *, overrides: Mapping[str, Any] | None = None) -> None:
        if card.task is not Task.CLASSIFY:
            raise ModelError(f"card '{card.name}' is for task {card.task.value}, not classification", path=engine.path)
        self.engine = engine
        self.card = card
        self.tta = _tta(overrides or {}, engine.path)
        if self.tta is Tta.FLIP and engine.input_shape[0] is not None:
            raise ConfigError(f"tta 'flip' runs two model rows per image: it needs a model with a dynamic batch "
                              f"axis (this one takes batch {engine.input_shape[0]})", path=engine.path)
        self.output_name = card.outputs[0].name if card.outputs else DEFAULT_OUTPUT
        check_engine(engine, card, (self.output_name,))
        self._views = 2 if self.tta is Tta.FLIP else 1

    def __repr__(self) -> str:
        return f"ClassifyPredictor({self.card.name!r}, {self.engine!r}, tta={self.tta.value})"

    def __call__(self, images: Sequence[ImageInput]) -> list[ClassProbs]:
        """Class scores per image."""
        return super().__call__(images)

    def preprocess(self, images: Sequence[ImageInput], *, at_input_scale: bool = False) -> Prepared:
        """The card's preprocessing; with flip TTA each image's row is followed by its mirror."""
        prepared = super().preprocess(images, at_input_scale=at_input_scale)
        if self.tta is Tta.NONE:
            return prepared
        return Prepared(with_mirrors(prepared.batch, prepared.transforms), prepared.sizes, prepared.transforms)

    def postprocess(self, raw: RawOutputs, prepared: Prepared) -> list[ClassProbs]:
        """Each image's `ClassProbs` (with flip, from the mean of its two rows' logits)."""
        logits = np.asarray(raw[self.output_name])
        expected = (self._views * len(prepared.sizes), self.card.num_classes)
        if logits.shape != expected:
            raise ModelError(f"model outputs {list(logits.shape)}, but {CARD_FILENAME} ({self.card.num_classes} "
                             f"classes, tta {self.tta.value}) implies {list(expected)}", path=self.engine.path)
        if not np.isfinite(logits).all():
            raise ModelError("model output non-finite logits (NaN or inf)", path=self.engine.path)
        per_image = logits.reshape(len(prepared.sizes), self._views, -1).mean(axis=1, dtype=np.float64)
        return [ClassProbs(row, self.card.class_names) for row in per_image]


def with_mirrors(batch: np.ndarray, transforms: Sequence[FitTransform]) -> np.ndarray:
    """(2N, C, H, W): each (C, H, W) input of `batch` followed by its horizontal mirror, of
    the image region only (columns [0, W - pad_x)), so the padding stays on the right."""
    doubled = np.repeat(batch, 2, axis=0)
    width = batch.shape[-1]
    for i, transform in enumerate(transforms):
        shown = width - transform.pad_x
        doubled[2 * i + 1, ..., :shown] = batch[i, ..., shown - 1::-1]
    return doubled


def _tta(overrides: Mapping[str, Any], path: Path) -> Tta:
    unknown = sorted(set(overrides) - {"tta"})
    if unknown:
        raise ConfigError(f"unknown override {unknown[0]!r} for a classifier (allowed: tta)", path=path)
    value = overrides.get("tta", Tta.NONE)
    try:
        return Tta(value)
    except ValueError:
        raise ConfigError(f"tta must be one of {', '.join(Tta)}, got {value!r}", path=path) from None
