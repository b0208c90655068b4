"""Card-driven classification predictor: images -> engine -> `ClassProbs` per image.

    predictor = ClassifyPredictor(engine, card)                     # card task classify
    probs = predictor([image_rgb])                                  # list[ClassProbs]
    probs[0].name, probs[0].score, probs[0].topk(5)
    ClassifyPredictor(engine, card, overrides={"tta": "flip"})      # image + mirror, logits averaged
    EnsemblePredictor([predictor_a, predictor_b, predictor_c])      # the mean of three models' logits
    load_ensemble(["exported/s1a", "exported/s1b"], overrides={"tta": "flip"})   # S1: both at once

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

An ensemble (`EnsemblePredictor`) averages the logits of several classifiers, each after its
own TTA (the mean of the models' mirror-averaged logits). Its members must agree on task,
class names and input spec (`check_members`, shared with `leanvision val --ensemble`): one
preprocessed batch then feeds every engine. An image costs one model row per member (two
with flip), which `leanvision bench` shows as images/s beside the accuracy gained.
"""

from __future__ import annotations

import enum
import functools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.card import CARD_FILENAME, ModelCard
from leanvision.core.classes import ClassProbs
from leanvision.core.enums import Task
from leanvision.core.errors import ConfigError, ModelError
from leanvision.core.letterbox import FitTransform
from leanvision.core.protocols import Prepared, RawOutputs
from leanvision.runtime.engines import Backend, Engine, EngineOptions
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
        return [ClassProbs(row, self.card.class_names) for row in self.logits(raw, prepared)]

    def logits(self, raw: RawOutputs, prepared: Prepared) -> np.ndarray:
        """(N, C) float64: each image's logits (with flip, the mean of its two rows'); ModelError
        on an output of the wrong shape or a non-finite one."""
        logits = np.asarray(raw[self.output_name])
        expected = (self._views * len(prepared.sizes), self.card.num_classes)
        if logits.shape != expected:
            raise ModelError(f"model outputs {list(logits.shape)}, but {CARD_FILENAME} ({self.card.num_classes} "
                             f"classes, tta {self.tta.value}) implies {list(expected)}", path=self.engine.path)
        if not np.isfinite(logits).all():
            raise ModelError("model output non-finite logits (NaN or inf)", path=self.engine.path)
        return logits.reshape(len(prepared.sizes), self._views, -1).mean(axis=1, dtype=np.float64)


class EnsemblePredictor:
    """A `StagedPredictor` over several `ClassifyPredictor`s: each image's logits are the mean
    of the members' (each after its TTA), its `ClassProbs` their softmax.

    The members share one preprocessed batch (`check_members`: same task, classes and input
    spec; the same TTA), which every member's engine runs; a `submit` calls back once all
    of them have. `card` is the first member's; `close` closes every engine.

    Raises:
        ConfigError: fewer than two members, members that disagree (`check_members`), or
            members with different TTA.
    """

    def __init__(self, members: Sequence[ClassifyPredictor]) -> None:
        members = tuple(members)
        if len(members) < 2:
            raise ConfigError(f"an ensemble needs at least 2 models, got {len(members)}")
        check_members([m.card for m in members], [m.engine.path.parent for m in members])
        ttas = {m.tta for m in members}
        if len(ttas) > 1:
            raise ConfigError(f"ensemble members run different TTA ({', '.join(sorted(ttas))}); give them one")
        self.members = members
        self.card = members[0].card
        self.tta = members[0].tta

    def __repr__(self) -> str:
        return f"EnsemblePredictor({', '.join(repr(m.card.name) for m in self.members)}, tta={self.tta.value})"

    @property
    def max_in_flight(self) -> int:
        return min(m.max_in_flight for m in self.members)

    def __call__(self, images: Sequence[ImageInput]) -> list[ClassProbs]:
        """Class scores per image, from the members' mean logits."""
        if len(images) == 0:
            return []
        prepared = self.preprocess(images)
        return self.postprocess(_merged([m.engine.infer(prepared.batch) for m in self.members]), prepared)

    def preprocess(self, images: Sequence[ImageInput], *, at_input_scale: bool = False) -> Prepared:
        """The members' common preprocessing (with flip, each image's row followed by its mirror)."""
        return self.members[0].preprocess(images, at_input_scale=at_input_scale)

    def submit(self, prepared: Prepared, on_done: Callable[[RawOutputs], None]) -> None:
        """Run the batch on every member's engine; `on_done` once, with all their outputs."""
        outputs: list[RawOutputs | None] = [None] * len(self.members)
        remaining = [len(self.members)]
        lock = threading.Lock()

        def member_done(index: int, raw: RawOutputs) -> None:
            with lock:
                outputs[index] = raw
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                on_done(_merged(outputs))

        for index, member in enumerate(self.members):
            member.engine.submit(prepared.batch, functools.partial(member_done, index))

    def wait_all(self) -> None:
        for member in self.members:
            member.wait_all()

    def postprocess(self, raw: RawOutputs, prepared: Prepared) -> list[ClassProbs]:
        """Each image's `ClassProbs` from the mean of the members' logits."""
        logits = np.mean([m.logits(_member_outputs(raw, i), prepared) for i, m in enumerate(self.members)], axis=0)
        return [ClassProbs(row, self.card.class_names) for row in logits]

    def close(self) -> None:
        """Close every member's engine."""
        for member in self.members:
            member.close()

    def __enter__(self) -> EnsemblePredictor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _merged(outputs: Sequence[RawOutputs | None]) -> dict[str, np.ndarray]:
    """The members' outputs as one mapping, member i's output `name` under "i/name"."""
    return {f"{i}/{name}": value for i, raw in enumerate(outputs) for name, value in (raw or {}).items()}


def _member_outputs(raw: RawOutputs, index: int) -> dict[str, np.ndarray]:
    prefix = f"{index}/"
    return {name[len(prefix):]: value for name, value in raw.items() if name.startswith(prefix)}


def check_members(cards: Sequence[ModelCard], paths: Sequence[str | os.PathLike[str]]) -> None:
    """ConfigError (naming the member) unless every card is a classifier's with the first's
    class names and input spec: what averaging logits over one input batch needs."""
    first = cards[0]
    for card, path in zip(cards, paths, strict=True):
        if card.task is not Task.CLASSIFY:
            raise ConfigError(f"ensemble member '{card.name}' is a {card.task.value} model; an ensemble averages "
                              f"classifiers' logits", path=path)
        if tuple(card.class_names) != tuple(first.class_names):
            raise ConfigError(f"ensemble member '{card.name}' has classes {_shown(card.class_names)}, the first "
                              f"model {_shown(first.class_names)}: members must have the same classes, in order",
                              path=path)
        if card.input != first.input:
            differ = [k for k, v in card.input.to_dict().items() if first.input.to_dict().get(k) != v]
            raise ConfigError(f"ensemble member '{card.name}' has another input spec than the first model "
                              f"({', '.join(differ)} differ): members must share one preprocessing", path=path)


def _shown(names: Sequence[str], most: int = 4) -> str:
    listed = ", ".join(names[:most]) + (", ..." if len(names) > most else "")
    return f"[{listed}] ({len(names)})"


def load_ensemble(
    model_dirs: Sequence[str | os.PathLike[str]],
    *,
    backend: Backend | str | None = None,
    options: EngineOptions | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> EnsemblePredictor:
    """Open exported classifier directories as one `EnsemblePredictor` (`load_predictor` for
    each, with the same backend, engine options and overrides). The cards are checked
    (`check_members`) before any engine opens; a picklable factory is
    `functools.partial(load_ensemble, dirs, ...)`.

    Raises:
        ModelError: a missing or corrupt model or card.
        ConfigError: fewer than two models, or members that disagree.
    """
    from leanvision.runtime.load import load_predictor

    dirs = [Path(d) for d in model_dirs]
    if len(dirs) < 2:
        raise ConfigError(f"an ensemble needs at least 2 models, got {len(dirs)}")
    for d in dirs:
        if not d.is_dir():
            raise ModelError("model directory not found", path=d)
    check_members([ModelCard.load(d) for d in dirs], dirs)
    members: list[ClassifyPredictor] = []
    try:
        for d in dirs:
            member = load_predictor(d, backend=backend, options=options, overrides=overrides)
            members.append(member)  # type: ignore[arg-type]  # a classifier card: check_members
        return EnsemblePredictor(members)
    except BaseException:
        for member in members:
            member.close()
        raise


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
