"""Card-driven counting predictor: images -> engine -> `DensityMap` in image pixels.

    predictor = load_predictor("exported/csrnet")          # the card's task picks this class
    maps = predictor([image_rgb])                           # list[DensityMap]
    maps[0].count                                           # objects in the image

Preprocessing is every predictor's (`runtime.preprocess.prepare_images`: the card's resize
mode, channel order, normalisation). Post-processing maps the model's `density` output
(N, 1, ceil(H/8), ceil(W/8)) back to each image: cells over letterbox padding are dropped
and strides become image pixels per cell (`DensityMap.from_model_output`); the count is
the sum, nothing is thresholded. The predictor is pure; the engine is its only state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from leanvision.core.card import CARD_FILENAME, ModelCard
from leanvision.core.density import DensityMap
from leanvision.core.enums import ResizeMode, Task
from leanvision.core.errors import ConfigError, ModelError
from leanvision.core.protocols import Prepared, RawOutputs
from leanvision.runtime.engines import Engine
from leanvision.runtime.preprocess import EnginePredictor, ImageInput, check_engine

DEFAULT_OUTPUT = "density"


class CountPredictor(EnginePredictor):
    """A `StagedPredictor` for density-map counting models (CSRNet family).

    Args:
        engine: runs the model; one output (the card's first, default `density`),
            (N, 1, ceil(H / stride), ceil(W / stride)) objects per cell.
        card: the model's card: task count, with `output_stride`.
        overrides: post-processing options; a density map has none, so any is a ConfigError
            (the argument exists because every task's predictor takes it).

    Raises:
        ModelError: the card is not a counting card or disagrees with the model.
        ConfigError: `overrides` is not empty, or the card's resize is centre crop.
    """

    def __init__(self, engine: Engine, card: ModelCard, *, overrides: Mapping[str, Any] | None = None) -> None:
        if overrides:
            raise ConfigError(f"post-processing overrides {sorted(overrides)} apply to detectors; "
                              f"'{card.name}' is a counting model", path=engine.path)
        if card.task is not Task.COUNT:
            raise ModelError(f"card '{card.name}' is for task {card.task.value}, not counting", path=engine.path)
        if card.input.resize is ResizeMode.CENTER_CROP:
            raise ConfigError(f"card '{card.name}': a counting model cannot use resize 'center_crop' "
                              "(it would count only the image's centre)", path=engine.path.parent)
        if card.output_stride is None or card.output_stride < 1:
            raise ModelError(f"counting card '{card.name}' has no output_stride", path=engine.path.parent)
        self.engine = engine
        self.card = card
        self.stride = card.output_stride
        self.output_name = card.outputs[0].name if card.outputs else DEFAULT_OUTPUT
        check_engine(engine, card, (self.output_name,))
        self._cells = (-(-card.input.height // self.stride), -(-card.input.width // self.stride))

    def __repr__(self) -> str:
        return f"CountPredictor({self.card.name!r}, {self.engine!r}, stride={self.stride})"

    def __call__(self, images: Sequence[ImageInput]) -> list[DensityMap]:
        """A density map per image, in that image's pixels; `.count` is the count."""
        return super().__call__(images)

    def postprocess(self, raw: RawOutputs, prepared: Prepared) -> list[DensityMap]:
        """Each image's density map: padding cells dropped, strides in image pixels."""
        density = np.asarray(raw[self.output_name])
        expected = (len(prepared.sizes), 1, *self._cells)
        if density.shape != expected:
            raise ModelError(f"model outputs {list(density.shape)}, but {CARD_FILENAME} (input, output stride "
                             f"{self.stride}) implies {list(expected)}", path=self.engine.path)
        return [DensityMap.from_model_output(d[0], t, self.stride)
                for d, t in zip(density, prepared.transforms, strict=True)]
