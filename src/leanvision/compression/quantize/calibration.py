"""Calibration images: found in any detection dataset or plain folder, preprocessed as deployed.

Every image goes through the deployment predictor's own reader and `preprocess` (the card's
resize mode, channel order and normalisation), so the activation ranges INT8 is fitted to
are those the deployed model will see. Counting is in images: each calibration item is one
image, a (1, 3, H, W) batch, so NNCF's `subset_size` (which counts dataset *items*) equals
the number of images (`nncf_subset_size`).

Channels follow the predictor: it decodes every file as 3-channel colour (OpenCV
IMREAD_COLOR), so a grayscale file becomes three equal channels. Calibration does the same
and warns; a set with *no* colour image at all is refused, because ranges fitted to gray
inputs (R = G = B) do not describe a colour model's inputs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from leanvision.compression.quantize.options import CalibSelect
from leanvision.compression.quantize.select import select
from leanvision.core.errors import DataError
from leanvision.data.formats import detect_format, read_dataset
from leanvision.data.images import is_image, list_images

logger = logging.getLogger(__name__)

Preprocess = Callable[[list[np.ndarray]], np.ndarray]
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "La"})


def nncf_subset_size(images: int, batch_size: int = 1) -> int:
    """NNCF's `subset_size` (dataset items) for `images` calibration images in batches of
    `batch_size`: ceil(images / batch_size). leanvision feeds one image per item (1)."""
    if images < 1 or batch_size < 1:
        raise ValueError(f"need at least one image and a positive batch size, got {images}, {batch_size}")
    return math.ceil(images / batch_size)


def image_files(path: Path) -> list[Path]:
    """The image files of a dataset of any task and format, or of a plain folder (recursive).

    Raises:
        DataError: the path does not exist or holds no image file.
    """
    if not path.exists():
        raise DataError("calibration set not found", path=path)
    if path.is_file():
        if not is_image(path):
            raise DataError("not an image file or a directory of images", path=path)
        return [path]
    try:
        fmt = detect_format(path)
    except DataError:
        fmt = None
    files = read_dataset(path, fmt).image_files() if fmt is not None else list(list_images(path))
    if not files:
        raise DataError("no image files in the calibration set", path=path)
    return files


def is_grayscale(path: Path) -> bool:
    """True when the file stores one gray channel (read from the header, not decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode in GRAY_MODES
    except Exception:  # an unreadable header: decoding will report it
        return False


@dataclasses.dataclass(frozen=True)
class Decoded:
    """One calibration image as the model takes it: (1, 3, H, W) float32."""

    index: int
    batch: np.ndarray


class CalibrationImages:
    """The images of a calibration set, read and preprocessed on demand.

    Args:
        source: the dataset or folder given by the user.
        files: its image files, in listing order.
        reader: file -> HxWx3 uint8 RGB (the predictor's reader); raises DataError.
        preprocess: list of RGB arrays -> (N, 3, H, W) model input (the predictor's).
    """

    def __init__(self, source: Path, files: Sequence[Path], reader: Callable[[Path], np.ndarray],
                 preprocess: Preprocess) -> None:
        self.source = source
        self.files = list(files)
        self._reader = reader
        self._preprocess = preprocess
        self.skipped: dict[int, str] = {}
        self.grayscale: set[int] = set()

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> np.ndarray:
        """Image `index` as a (1, 3, H, W) model input; DataError if it cannot be decoded."""
        path = self.files[index]
        image = self._reader(path)
        if is_grayscale(path) and index not in self.grayscale:
            self.grayscale.add(index)
            logger.warning("%s: grayscale image, converted to 3 equal channels as the predictor does", path)
        return self._preprocess([image])

    def try_load(self, index: int) -> Decoded | None:
        """`load`, but an unreadable image is recorded in `skipped` (and warned) instead."""
        try:
            return Decoded(index, self.load(index))
        except DataError as exc:
            self.skipped[index] = exc.message
            logger.warning("skipping calibration image %s: %s", self.files[index], exc.message)
            return None

    def batches(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        """The images `indices` one at a time, (1, 3, H, W) each (for NNCF / ONNX Runtime)."""
        for index in indices:
            yield self.load(index)

    def stack(self, indices: Sequence[int]) -> np.ndarray:
        """The images `indices` as one (K, 3, H, W) batch."""
        return np.concatenate([self.load(i) for i in indices])

    def check_colour(self, used: Sequence[int], *, what: str = "calibration") -> None:
        """DataError when every image in `used` is grayscale (see the module docstring)."""
        if used and all(i in self.grayscale for i in used):
            raise DataError(f"all {len(used)} {what} images are grayscale but the model takes colour "
                            "(RGB) input; use colour images", path=self.source)

    def readable(self, indices: Sequence[int]) -> list[Decoded]:
        """Decode `indices` in order, skipping unreadable ones."""
        return [d for d in (self.try_load(i) for i in indices) if d is not None]

    def no_image_error(self) -> DataError:
        reasons = "; ".join(sorted(set(self.skipped.values())))[:200]
        return DataError(f"no readable image in the calibration set ({len(self.files)} files: {reasons})",
                         path=self.source)


FeatureFn = Callable[[np.ndarray], np.ndarray]  # (N, 3, H, W) -> (N, D)


def choose_images(images: CalibrationImages, method: CalibSelect, count: int, *, seed: int,
                  features: FeatureFn | None) -> list[int]:
    """`count` readable images chosen by `method`, in choice order (so every prefix is the
    choice for a smaller count: random takes a seeded permutation, similar the nearest
    first, k-center greedy adds one at a time).

    Raises:
        DataError: no image of the set can be read, or all are grayscale.
    """
    if method is CalibSelect.RANDOM:
        chosen = _random_readable(images, count, seed)
    else:
        if features is None:
            raise ValueError(f"{method.value} selection needs a feature function")
        decoded = images.readable(range(len(images)))
        if not decoded:
            raise images.no_image_error()
        rows = np.concatenate([features(d.batch) for d in decoded])
        picks = select(method, count, count=len(decoded), features=rows, seed=seed)
        chosen = [decoded[p].index for p in picks]
    if not chosen:
        raise images.no_image_error()
    images.check_colour(chosen)
    return chosen


def _random_readable(images: CalibrationImages, count: int, seed: int) -> list[int]:
    """Walk a seeded permutation, keeping readable images until `count` are found."""
    order = select(CalibSelect.RANDOM, len(images), count=len(images), features=None, seed=seed)
    chosen: list[int] = []
    for index in order:
        if len(chosen) == count:
            break
        if images.try_load(index) is not None:
            chosen.append(index)
    return chosen
