"""What every task's predictor shares: read an image, fit it to the card's input (resize
mode, scale, padding, centre crop), reorder channels, normalise; the check that an engine
matches its card; and `EnginePredictor`, the engine plumbing of a `StagedPredictor` (a task's
predictor adds only its `postprocess`).

`place` / `fit_to_input` / `place_image` put an image's pixels where a `core.letterbox.FitTransform` says, for
deployment here and for the torch world's datasets, so training and deployment place pixels
identically in every resize mode.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from leanvision.core.card import CARD_FILENAME, InputSpec, ModelCard
from leanvision.core.enums import ResizeMode
from leanvision.core.errors import ConfigError, DataError, ModelError
from leanvision.core.letterbox import FitTransform, fit
from leanvision.core.protocols import Prepared, RawOutputs
from leanvision.largeimage.readers import whole
from leanvision.runtime.engines import Engine

ImageInput = np.ndarray | str | os.PathLike[str]


def read_image(item: ImageInput, index: int) -> np.ndarray:
    """An HxWx3 uint8 RGB array from an array or an image file, or DataError.

    Files are read by the project's one reading policy (`largeimage.readers.whole`), the
    readers `predict` and `data check` use: 16-bit scaled to 8-bit, CMYK and palette as RGB,
    alpha dropped, EXIF orientation applied, a declared size over the decode limit refused.
    """
    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8 or 0 in item.shape:
            raise DataError(f"image {index}: expected an HxWx3 uint8 RGB array, got {item.dtype} {item.shape}")
        return item
    path = Path(item)
    if not path.is_file():
        raise DataError("image file not found", path=path)
    return whole.read_rgb(path)


def prepare_images(images: Sequence[ImageInput], spec: InputSpec, *, at_input_scale: bool = False) -> Prepared:
    """Fit each image to the card's input (its resize mode), reorder channels, normalise.

    What every predictor's `preprocess` does, whatever the task.

    Returns:
        `Prepared` with batch (N, 3, H, W) float32 (uint8 when `spec.dtype` says the model
        normalises in-graph), source sizes (height, width) and `FitTransform`s.
    """
    input_hw = (spec.height, spec.width)
    arrays = [read_image(item, i) for i, item in enumerate(images)]
    if at_input_scale and spec.resize is ResizeMode.CENTER_CROP and any(a.shape[:2] != input_hw for a in arrays):
        # A whole-image tile is read already cropped, at the input size; any other tile is not.
        raise ConfigError("resize 'center_crop' cannot run on large-image tiles: it would cut each tile's borders")
    # A tile read at the card's scale must not be scaled again: with S0's scale 0.5 an 800 px
    # tile of a 1600 px window would shrink to 400 px and its detections map back 2x too far.
    scale = 1.0 if at_input_scale and spec.resize is ResizeMode.SCALE else spec.scale
    transforms = tuple(fit(a.shape[:2], input_hw, spec.resize, scale) for a in arrays)
    batch = np.full((len(arrays), *input_hw, 3), spec.pad_value, np.uint8)
    for slot, image, transform in zip(batch, arrays, transforms, strict=True):
        place(image, transform, slot)
    if spec.color == "BGR":
        batch = batch[..., ::-1]
    sizes = tuple((int(a.shape[0]), int(a.shape[1])) for a in arrays)
    return Prepared(_to_model_input(batch, spec), sizes, transforms)


def _to_model_input(batch: np.ndarray, spec: InputSpec) -> np.ndarray:
    chw = batch.transpose(0, 3, 1, 2)  # reorder the uint8 pixels: 4x less to move than floats
    if spec.dtype == "uint8":
        return np.ascontiguousarray(chw)
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    out = np.empty(chw.shape, np.float32)
    np.subtract(chw, mean[:, None, None], out=out, dtype=np.float32)
    out /= std[:, None, None]
    return out


def check_engine(engine: Engine, card: ModelCard, output_names: Sequence[str]) -> None:
    """ModelError unless the engine's input size is the card's and it has `output_names`."""
    input_hw = (card.input.height, card.input.width)
    shape = engine.input_shape
    model_hw = tuple(shape[2:]) if len(shape) == 4 else ()
    if len(model_hw) != 2 or any(m is not None and m != c for m, c in zip(model_hw, input_hw, strict=True)):
        shown = "x".join("?" if d is None else str(d) for d in model_hw) or str(list(shape))
        raise ModelError(
            f"{CARD_FILENAME} says input {input_hw[0]}x{input_hw[1]} but {engine.path.name} takes {shown}",
            path=engine.path.parent,
        )
    missing = [n for n in output_names if n not in engine.output_names]
    if missing:
        raise ModelError(
            f"model has no output {missing[0]!r} named by {CARD_FILENAME} (outputs: {', '.join(engine.output_names)})",
            path=engine.path,
        )


def place(image: np.ndarray, transform: FitTransform, out: np.ndarray) -> None:
    """Write `image` (H, W, C) into `out` (input height, input width, C) as `transform` says:
    resized (OpenCV bilinear, half-pixel centres) to `transform.resized_hw`, cropped by
    (`crop_x`, `crop_y`), at the top-left. Padding pixels of `out` are left as they are."""
    import cv2

    height, width = transform.resized_hw
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    shown = image[transform.crop_y: transform.crop_y + out.shape[0], transform.crop_x: transform.crop_x + out.shape[1]]
    out[: shown.shape[0], : shown.shape[1]] = shown


def fit_to_input(
    image: np.ndarray, input_hw: tuple[int, int], mode: ResizeMode, *, scale: float | None = None, pad_value: int = 0
) -> tuple[np.ndarray, FitTransform]:
    """An (H, W, C) uint8 image fitted to an `input_hw` (height, width) model input in `mode`
    (`core.letterbox.fit`; `scale` for mode scale), padding `pad_value`: the pixels
    `prepare_images` gives the model, before channel order and normalisation.

    Returns:
        (input height, input width, C) uint8 array, and the `FitTransform` that maps boxes.
    """
    transform = fit(image.shape[:2], input_hw, ResizeMode(mode), scale)
    out = np.full((*input_hw, image.shape[2]), pad_value, image.dtype)
    place(image, transform, out)
    return out, transform


def place_image(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """An (H, W, C) uint8 image fitted to the card's input (`fit_to_input` with the card's
    size, resize mode, scale and pad value): (spec.height, spec.width, C) uint8."""
    return fit_to_input(image, (spec.height, spec.width), spec.resize, scale=spec.scale, pad_value=spec.pad_value)[0]


class EnginePredictor(abc.ABC):
    """A `StagedPredictor` around an engine, but for `postprocess` (the task's own).

    `__call__(images)` runs preprocess -> engine -> postprocess synchronously; `submit` and
    `wait_all` run inference asynchronously for pipelines; `with predictor:` closes the engine.
    """

    engine: Engine
    card: ModelCard

    @property
    def max_in_flight(self) -> int:
        return self.engine.num_requests

    def close(self) -> None:
        """Close the engine (finishing in-flight requests)."""
        self.engine.close()

    def __enter__(self) -> EnginePredictor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __call__(self, images: Sequence[ImageInput]) -> list:
        """One result per image, in that image's pixels."""
        if len(images) == 0:
            return []
        prepared = self.preprocess(images)
        return self.postprocess(self.engine.infer(prepared.batch), prepared)

    def preprocess(self, images: Sequence[ImageInput], *, at_input_scale: bool = False) -> Prepared:
        """Fit each image to the input (the card's resize mode), reorder channels, normalise.

        Args:
            images: RGB images or paths.
            at_input_scale: the images are tiles a large-image pipeline already read at the
                card's scale (windows of `card.input.window` px at the input size): they are
                not scaled again, only padded if smaller.

        Returns:
            `Prepared` with batch (N, 3, H, W) float32 (uint8 when the card's dtype says the
            model normalises in-graph), source sizes and `FitTransform`s.
        """
        return prepare_images(images, self.card.input, at_input_scale=at_input_scale)

    def submit(self, prepared: Prepared, on_done: Callable[[RawOutputs], None]) -> None:
        self.engine.submit(prepared.batch, on_done)

    def wait_all(self) -> None:
        self.engine.wait_all()

    @abc.abstractmethod
    def postprocess(self, raw: RawOutputs, prepared: Prepared) -> list:
        """The task's results per image from the engine's raw outputs."""

