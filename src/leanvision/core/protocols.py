"""Protocols that connect the worlds without imports between them.

`Predictor` is what every consumer of a model takes (evaluation, benchmarks, the
large-image pipeline): a pure function from a batch of images to one result per image.
`StagedPredictor` exposes the same work as three stages so that a pipeline can run them on
different threads and keep several inference requests in flight:

    prepared = predictor.preprocess(images)          # any thread (numpy: resize, normalise)
    predictor.submit(prepared, on_done)               # returns at once; on_done(raw) later
    results = predictor.postprocess(raw, prepared)    # any thread (numpy: decode, NMS)

`__call__` must equal preprocess -> infer -> postprocess run synchronously.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from leanvision.core.card import ModelCard

RawOutputs = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Prepared:
    """A preprocessed batch and what is needed to map results back to the input images.

    Attributes:
        batch: (N, C, H, W) model input.
        sizes: per image, its (height, width) before preprocessing.
        transforms: per image, whatever the predictor needs to undo its preprocessing
            (e.g. letterbox scale and padding).
    """

    batch: np.ndarray
    sizes: tuple[tuple[int, int], ...]
    transforms: tuple[Any, ...]


@runtime_checkable
class Predictor(Protocol):
    """A pure function from a batch of images to one result per image.

    `images` are HxWx3 uint8 RGB arrays (any size; the predictor fits them to its input).
    Results are core types in the pixels of the image given (e.g. `Detections`).
    Implementations keep no state between calls, so one predictor can serve any caller.
    """

    card: ModelCard

    def __call__(self, images: Sequence[np.ndarray]) -> list: ...


@runtime_checkable
class StagedPredictor(Predictor, Protocol):
    """A predictor whose stages can run on different threads, with async inference."""

    @property
    def max_in_flight(self) -> int:
        """How many `submit` calls may usefully be outstanding at once (infer requests)."""
        ...

    def preprocess(self, images: Sequence[np.ndarray], *, at_input_scale: bool = False) -> Prepared:
        """Images -> model batch. `at_input_scale`: they are tiles already read at the card's
        scale (windows of `card.input.window` px at the input size), not to be scaled again."""
        ...

    def submit(self, prepared: Prepared, on_done: Callable[[RawOutputs], None]) -> None:
        """Start inference; `on_done(raw_outputs)` is called from an engine thread."""
        ...

    def wait_all(self) -> None:
        """Block until every submitted request has called its `on_done`."""
        ...

    def postprocess(self, raw: RawOutputs, prepared: Prepared) -> list: ...
