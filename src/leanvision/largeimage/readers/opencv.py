"""OpenCV fallback reader: whole-image decode, reduced (IMREAD_REDUCED_*) for JPEG.

OpenCV refuses images over 2^30 pixels (OPENCV_IO_MAX_IMAGE_PIXELS). This reader checks
the header first: a size whose smallest decode is over `ReaderOptions.max_decode_mb` is
refused (`DataError`, the message of every reader); one within it but over OpenCV's limit
raises `PixelLimitError`: with an explicit `kind="opencv"` that is the answer (refuse);
`open_reader` without `kind` falls back to pyvips for such files.
EXIF orientation is ignored at decode (IMREAD_IGNORE_ORIENTATION) and applied by the base
class, which does what cv2.imread does by default for JPEG; both agree (tested). TIFFs with
an orientation tag other than 1 are refused: cv2 (5.0) flips them partly on its own.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from leanvision.core.errors import DataError
from leanvision.largeimage.readers.base import (
    PixelLimitError,
    ReaderKind,
    ReaderOptions,
    Scratch,
    check_decode_bytes,
    check_file,
    data_errors,
)
from leanvision.largeimage.readers.decoded import WholeImageReader
from leanvision.largeimage.readers.headers import (
    ImageFormat,
    file_orientation,
    header_size,
    jpeg_has_end,
    sniff,
)

DEFAULT_MAX_PIXELS = 2**30


def opencv_max_pixels() -> int:
    """OpenCV's decode limit, which the user may raise through its environment variable."""
    return int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS))


class OpenCVReader(WholeImageReader):
    """Any format OpenCV decodes; JPEG at DCT scales 1/8, 1/4, 1/2, 1."""

    kind = ReaderKind.OPENCV

    def __init__(
        self, path: str | os.PathLike[str], *, options: ReaderOptions, scratch: Scratch | None = None
    ) -> None:
        path = check_file(path)
        self._format = sniff(path)
        self._size = header_size(path)
        smallest = (1 if self._format is ImageFormat.JPEG else 8) / 8  # IMREAD_REDUCED_COLOR_8 for JPEG
        shape = (math.ceil(self._size[1] * smallest), math.ceil(self._size[0] * smallest), 3)
        check_decode_bytes(path, shape, options, self.kind.value)
        limit = opencv_max_pixels()
        if self._size[0] * self._size[1] > limit:
            raise PixelLimitError(
                f"OpenCV refuses images over {limit} pixels (OPENCV_IO_MAX_IMAGE_PIXELS); this one "
                f"is {self._size[0]}x{self._size[1]}: use kind='pyvips' (or simplejpeg/tifffile)",
                path=path,
            )
        if self._format is ImageFormat.JPEG and not jpeg_has_end(path):
            raise DataError("the file is truncated (no JPEG end-of-image marker)", path=path)
        orientation = file_orientation(path)
        if self._format is ImageFormat.TIFF and orientation != 1:
            # cv2's libtiff path flips such TIFFs itself, only partly (orientations 2 and 3
            # come out wrong, 5-8 fail), whatever IMREAD_IGNORE_ORIENTATION says.
            raise DataError(
                f"OpenCV mis-applies TIFF orientation {orientation}; use kind='tifffile' or 'pyvips'",
                path=path,
            )
        super().__init__(path, options=options, orientation=orientation, scratch=scratch)

    @property
    def stored_size(self) -> tuple[int, int]:
        return self._size

    @property
    def supported_eighths(self) -> Sequence[int]:
        return (1, 2, 4, 8) if self._format is ImageFormat.JPEG else (8,)

    def _decode(self, eighths: int) -> np.ndarray:
        import cv2

        flags = {
            8: cv2.IMREAD_COLOR, 4: cv2.IMREAD_REDUCED_COLOR_2,
            2: cv2.IMREAD_REDUCED_COLOR_4, 1: cv2.IMREAD_REDUCED_COLOR_8,
        }[eighths] | cv2.IMREAD_IGNORE_ORIENTATION
        shape = self.decoded_shape(eighths)
        check_decode_bytes(self.path, shape, self.options, self.kind.value)
        # cv2.imread into `dst` returns `dst` even when decoding fails (a truncated PNG came
        # back as the scratch buffer's old pixels), so only JPEG, whose end marker is checked
        # above, decodes into the scratch buffer; other formats allocate and can report None.
        dst = self._array(shape) if self._format is ImageFormat.JPEG else None
        with data_errors(self.path, "decode image with OpenCV"):
            image = cv2.imread(str(self.path), flags) if dst is None else cv2.imread(str(self.path), dst, flags)
        if image is None or image.size == 0:
            raise DataError("the file is corrupt or truncated (OpenCV cannot decode it)", path=self.path)
        if image.shape != shape:
            raise DataError(f"OpenCV decoded {image.shape}, the header says {shape}", path=self.path)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)
