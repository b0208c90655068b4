"""Errors a user can act on. The CLI prints them as one line, `path: problem`, exit 2."""

from __future__ import annotations

import os


class LeanVisionError(Exception):
    """A problem with the user's input, files or environment (not a bug in leanvision).

    Args:
        message: what is wrong, in one line, without the path.
        path: the file or directory concerned, if any.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class DataError(LeanVisionError):
    """A dataset, label file or image is missing, corrupt or inconsistent."""


class ConfigError(LeanVisionError):
    """A recipe or option is invalid (unknown key, wrong type, bad value)."""


class ConfigValueError(ConfigError, ValueError):
    """A bad value given to an options class directly (not through `from_dict`): a ConfigError
    for the CLI, and the ValueError a dataclass's own checks raise for Python callers."""


class ModelError(LeanVisionError):
    """A model file, checkpoint or model card is missing, corrupt or inconsistent."""


class MissingExtraError(ImportError, LeanVisionError):
    """An optional dependency is not installed; names the extra that provides it."""

    def __init__(self, module: str, extra: str, *, purpose: str) -> None:
        message = (
            f"{purpose} needs the Python package '{module}', which is not installed: "
            f"pip install 'leanvision[{extra}]'"
        )
        LeanVisionError.__init__(self, message)
        ImportError.__init__(self, message, name=module)
        self.module = module
        self.extra = extra

    def __str__(self) -> str:
        return self.message


# Library messages (libjpeg, libpng, libtiff, OpenCV, libvips, Pillow) a user cannot act on,
# by a lowercase fragment, and what they mean in plain words. First match wins: truncation is
# tested before corruption because libraries often say both ("corrupt JPEG data: premature end").
_PLAIN_WORDS: tuple[tuple[str, str], ...] = (
    ("premature end", "the file is truncated"),
    ("truncat", "the file is truncated"),
    ("unexpected end", "the file is truncated"),
    ("past the end of the file", "the file is truncated"),
    ("not enough image data", "the file is truncated"),
    ("no end-of-image marker", "the file is truncated"),
    ("is not a known file format", "not an image file"),
    ("cannot identify image file", "not an image file"),
    ("unsupported image format", "not an image file"),
    ("not a jpeg file", "not an image file"),
    ("crc error", "the file is corrupt"),
    ("incorrect data check", "the file is corrupt"),
    ("corrupt", "the file is corrupt"),
    ("could not determine subsampling", "the file is corrupt"),
    ("bogus", "the file is corrupt"),
    ("invalid", "the file is corrupt"),
)


def plural(n: int, one: str, many: str | None = None) -> str:
    """'1 image', '2 images', '0 people' (`many` for irregular plurals)."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def plain_reason(text: str) -> str | None:
    """What a decoding library's message means for the user, or None if it is not one we know.

    The one place library jargon is translated: "Premature end of JPEG file" -> "the file is
    truncated", "VipsForeignLoad: ... is not a known file format" -> "not an image file",
    "libpng error: IHDR: CRC error" -> "the file is corrupt".
    """
    lowered = text.lower()
    return next((plain for fragment, plain in _PLAIN_WORDS if fragment in lowered), None)
