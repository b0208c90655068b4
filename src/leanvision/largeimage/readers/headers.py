"""Header reads without decoding pixels: format sniffing, JPEG size and EXIF orientation.

The JPEG walk is written by hand because the libraries that parse EXIF either decode
(cv2) or refuse huge images before reading the header (Pillow's pixel limit); it reads
only the marker segments before the first scan, a few kilobytes. BMP and WebP sizes are
read by hand for the same reason: Pillow refuses to say how large a header claims an image
is once that is over its limit, and the size is what the decode limit is checked on.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from leanvision.core.errors import DataError, plain_reason

# libjpeg's JPEG_MAX_DIMENSION: a larger side is refused by every libjpeg-based decoder.
JPEG_MAX_SIDE = 65500
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
_ORIENTATION_TAG = 0x0112


class ImageFormat(enum.StrEnum):
    JPEG = "jpeg"
    TIFF = "tiff"
    PNG = "png"
    BMP = "bmp"
    WEBP = "webp"
    OTHER = "other"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


def sniff(path: Path) -> ImageFormat:
    """The format by magic bytes (not by suffix)."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:3] == b"\xff\xd8\xff":
        return ImageFormat.JPEG
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return ImageFormat.TIFF
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return ImageFormat.PNG
    if head[:2] == b"BM":
        return ImageFormat.BMP
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    return ImageFormat.OTHER


@dataclass(frozen=True)
class JpegInfo:
    """Stored (w, h) in pixels, component count and EXIF orientation (1 if absent)."""

    width: int
    height: int
    components: int
    orientation: int


def _segment(f: BinaryIO, path: Path) -> tuple[int, bytes]:
    """Next marker and its payload; standalone markers have an empty payload."""
    byte = f.read(1)
    while byte and byte != b"\xff":  # tolerate garbage between segments, as libjpeg does
        byte = f.read(1)
    while byte == b"\xff":
        byte = f.read(1)
    if not byte:
        raise DataError("the file is truncated (no JPEG frame header before its end)", path=path)
    marker = byte[0]
    if marker in _STANDALONE:
        return marker, b""
    raw = f.read(2)
    if len(raw) < 2:
        raise DataError("the file is truncated (in its JPEG header)", path=path)
    length = struct.unpack(">H", raw)[0]
    payload = f.read(length - 2)
    if len(payload) < length - 2:
        raise DataError("the file is truncated (in its JPEG header)", path=path)
    return marker, payload


def jpeg_info(path: Path) -> JpegInfo:
    """Size and orientation from the JPEG markers before the first scan."""
    orientation = 1
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            raise DataError("not a JPEG file (no start-of-image marker)", path=path)
        while True:
            marker, payload = _segment(f, path)
            if marker == 0xE1 and payload.startswith(b"Exif\x00\x00") and orientation == 1:
                orientation = exif_orientation(payload[6:])
            elif marker in _SOF:
                if len(payload) < 6:
                    raise DataError("corrupt JPEG frame header", path=path)
                height, width = struct.unpack(">HH", payload[1:5])
                return _checked(JpegInfo(width, height, payload[5], orientation), path)
            elif marker in (0xDA, 0xD9):
                raise DataError("corrupt JPEG: no frame header before the image data", path=path)


def _checked(info: JpegInfo, path: Path) -> JpegInfo:
    if info.width == 0 or info.height == 0:
        raise DataError(f"corrupt JPEG: frame size {info.width}x{info.height}", path=path)
    if max(info.width, info.height) > JPEG_MAX_SIDE:
        raise DataError(
            f"JPEG of {info.width}x{info.height} px: libjpeg decodes sides of at most "
            f"{JPEG_MAX_SIDE} px",
            path=path,
        )
    return info


def exif_orientation(tiff: bytes) -> int:
    """Orientation tag (1-8) of an EXIF TIFF structure's first IFD; 1 if absent or invalid."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for i in range(count):
        entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag == _ORIENTATION_TAG and kind == 3:  # SHORT
            (value,) = struct.unpack(order + "H", entry[8:10])
            return value if 1 <= value <= 8 else 1
    return 1


def png_size(path: Path) -> tuple[int, int]:
    """(w, h) from the PNG IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise DataError("corrupt PNG header", path=path)
    return struct.unpack(">II", head[16:24])


def bmp_size(path: Path) -> tuple[int, int]:
    """(w, h) from the BMP DIB header (a negative height is a top-down image)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26:
        raise DataError("the file is truncated (in its BMP header)", path=path)
    if struct.unpack("<I", head[14:18])[0] == 12:  # BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", head[18:22])
    else:
        width, height = struct.unpack("<ii", head[18:26])
    if width <= 0 or height == 0:
        raise DataError(f"corrupt BMP header: size {width}x{height}", path=path)
    return width, abs(height)


def webp_size(path: Path) -> tuple[int, int]:
    """(w, h) from the first chunk of a WebP file: VP8 (lossy), VP8L (lossless) or VP8X (extended)."""
    with open(path, "rb") as f:
        head = f.read(30)
    kind = head[12:16]
    if kind == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = struct.unpack("<I", head[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    raise DataError("the file is corrupt or truncated (no WebP frame header)", path=path)


def tiff_orientation(path: Path) -> int:
    """Orientation tag of the first TIFF page (tifffile); 1 if absent or unreadable here."""
    try:
        import tifffile
    except ImportError:
        return 1
    try:
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags.get(274)
    except Exception:  # the reader itself reports unreadable files; this is only a header
        return 1
    value = int(tag.value) if tag is not None else 1
    return value if 1 <= value <= 8 else 1


def file_orientation(path: Path) -> int:
    """EXIF (JPEG) or TIFF orientation tag, as cv2.imread applies it; 1 for other formats."""
    fmt = sniff(path)
    if fmt is ImageFormat.JPEG:
        return jpeg_info(path).orientation
    if fmt is ImageFormat.TIFF:
        return tiff_orientation(path)
    return 1


def jpeg_has_end(path: Path) -> bool:
    """The file holds an end-of-image marker in its last 4 KiB (trailing bytes after it allowed).

    Decoders that only warn on truncated data (OpenCV, libvips, GDAL) are checked with
    this before decoding; simplejpeg in strict mode raises by itself.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 4096))
        return b"\xff\xd9" in f.read()


def pillow_size(path: Path) -> tuple[int, int]:
    """(w, h) from Pillow's lazy header read, refusing past Pillow's pixel limit."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                return im.size
        except Image.DecompressionBombError:
            raise DataError(
                f"image over Pillow's pixel limit ({2 * (Image.MAX_IMAGE_PIXELS or 0)} px) "
                "for a header read; use kind='pyvips'",
                path=path,
            ) from None
        except OSError as exc:
            message = _one_line(exc)
            raise DataError(plain_reason(message) or f"cannot read the image header: {message}", path=path) from exc


def header_size(path: Path) -> tuple[int, int]:
    """Stored (w, h) from the file header, for readers whose library has no header read."""
    fmt = sniff(path)
    if fmt is ImageFormat.JPEG:
        info = jpeg_info(path)
        return info.width, info.height
    if fmt is ImageFormat.PNG:
        return png_size(path)
    if fmt is ImageFormat.BMP:
        return bmp_size(path)
    if fmt is ImageFormat.WEBP:
        return webp_size(path)
    if fmt is ImageFormat.TIFF:
        try:
            import tifffile
        except ImportError:
            return pillow_size(path)
        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                return int(page.imagewidth), int(page.imagelength)
        except Exception as exc:
            message = _one_line(exc)
            raise DataError(plain_reason(message) or f"cannot read the TIFF header: {message}", path=path) from exc
    return pillow_size(path)
