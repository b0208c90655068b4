"""Readers for formats that cannot be read by window: decode once, reduced, then cut windows.

A JPEG has no random access (its entropy-coded data must be decoded from the start), so
these readers decode the whole image once, at the coarsest DCT scale M/8 that still gives
the output size the first read asks for, hold it, and cut every later window from it.
Memory held per open reader: ceil(W*M/8) x ceil(H*M/8) x 3 bytes (12000 px at 1/2: 108 MB,
at full scale 432 MB), bounded by `ReaderOptions.max_decode_mb`. A later read needing a
finer scale decodes again at that scale (a grid has one scale, so this does not happen
in the pipeline). Windows are cut at the nearest decoded pixel: within M/16 level-0
pixels of the exact position.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from leanvision.largeimage.readers.base import (
    Reader,
    ReaderOptions,
    Scratch,
    dct_eighths,
    resize_into,
)


def scaled_box(window: tuple[int, int, int, int], scale: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of level-0 `window` in an image decoded at `scale` of `size` (w, h):
    at the nearest decoded pixel, at least one pixel, inside the image."""
    x, y, w, h = window
    x0, y0 = min(round(x * scale), size[0] - 1), min(round(y * scale), size[1] - 1)
    x1, y1 = max(x0 + 1, min(round((x + w) * scale), size[0])), max(y0 + 1, min(round((y + h) * scale), size[1]))
    return x0, y0, x1, y1


class WholeImageReader(Reader):
    """Base of readers holding one reduced decode of the whole image."""

    def __init__(
        self, path: Path, *, options: ReaderOptions, orientation: int = 1, scratch: Scratch | None = None
    ) -> None:
        super().__init__(path, options=options, orientation=orientation)
        self._scratch = scratch
        self._image: np.ndarray | None = None
        self._eighths = 0
        self.decodes = 0  # whole-image decodes done, for tests and benchmarks

    @property
    def supported_eighths(self) -> Sequence[int]:
        """DCT scales M/8 this decoder offers for this file (8 alone: no reduced decode)."""
        return (8,)

    @abc.abstractmethod
    def _decode(self, eighths: int) -> np.ndarray:
        """The whole stored image decoded at scale eighths/8, (H', W', 3) uint8 RGB."""

    @property
    def decoded_size(self) -> tuple[int, int] | None:
        """(w, h) of the decode held now (memory: w * h * 3 bytes), None before the first read."""
        return None if self._image is None else (self._image.shape[1], self._image.shape[0])

    def decoded_shape(self, eighths: int) -> tuple[int, int, int]:
        w, h = self.stored_size
        return math.ceil(h * eighths / 8), math.ceil(w * eighths / 8), 3

    def _array(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """Where to decode: the worker's scratch buffer if given, else None (allocate)."""
        return None if self._scratch is None else self._scratch.array(shape)

    def needed_eighths(self, window: tuple[int, int], out: tuple[int, int], offered: Sequence[int]) -> int:
        """The coarsest of the `offered` DCT scales M/8 giving `window` at least the `out` size."""
        need = dct_eighths(window, out) if self.options.reduced else 8
        return next((m for m in sorted(offered) if m >= need), 8)

    def _ensure(self, window: tuple[int, int], out: tuple[int, int]) -> np.ndarray:
        eighths = self.needed_eighths(window, out, self.supported_eighths)
        if self._image is None or eighths > self._eighths:
            self._image = None  # release before decoding again
            self._image = self._decode(eighths)
            self._eighths = eighths
            self.decodes += 1
        return self._image

    def _read_stored(self, x: int, y: int, w: int, h: int, out: np.ndarray) -> None:
        image = self._ensure((w, h), (out.shape[1], out.shape[0]))
        x0, y0, x1, y1 = scaled_box((x, y, w, h), self._eighths / 8, (image.shape[1], image.shape[0]))
        resize_into(image[y0:y1, x0:x1], out)

    def _close(self) -> None:
        self._image = None
