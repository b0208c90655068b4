"""Shared pieces of the dataset formats: issues found while reading, layout helpers."""

from __future__ import annotations

import enum
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from leanvision.core import DataError


class Format(enum.StrEnum):
    COCO = "coco"
    VOC = "voc"
    YOLO = "yolo"
    IMAGEFOLDER = "imagefolder"
    LABELS_CSV = "labels_csv"  # classify: labels.csv (path,label) beside the images
    POINTS = "points"  # counting: points.json / points.csv beside images/
    SHANGHAITECH = "shanghaitech"  # counting: images/ + ground-truth/GT_*.mat
    MASKS = "masks"  # segmentation: images/ + masks/*.png


@dataclass(frozen=True)
class Issue:
    """A problem found in a dataset: the file concerned and why, in one line.

    Attributes:
        images, objects: what the reader left out because of it (an image with all its
            labels, or single objects), so that a conversion can account for every loss.
        image: for objects left out of an image that is kept, its file name in the set:
            scored or trained with a box missing, that image would be wrong, not short.
    """

    path: str
    reason: str
    images: int = 0
    objects: int = 0
    image: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def is_number(value: object) -> bool:
    """A finite int or float (JSON numbers; not bool, str, None, NaN or infinity).

    An int too large for a float (JSON allows `1e400` written out as digits) is not one:
    every later step computes in floats.
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def parse_float(text: str | None) -> float:
    """A finite float from label text; ValueError naming the text otherwise (NaN, inf, words)."""
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def size_field(value: object) -> int:
    """An image width or height from labels: a whole number >= 0 (0: unknown); ValueError otherwise."""
    if value is None:
        return 0
    if isinstance(value, str):
        value = parse_float(value)
    if not is_number(value) or value < 0 or float(value) != int(value):  # type: ignore[arg-type]
        raise ValueError(f"image size must be a whole number of pixels >= 0, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def name_problem(name: object) -> str | None:
    """Why `name` cannot be an image file name inside a dataset folder, or None if it can.

    A name must be a relative path that stays inside its folder: no `..` component, not
    absolute (POSIX or Windows drive), no backslash (a Windows separator on one system, a
    plain character on another), no control character.
    """
    if not isinstance(name, str) or not name.strip():
        return f"file name must be a non-empty string, got {name!r}"
    if "\\" in name or any(ord(c) < 32 for c in name):
        return f"file name {name!r} holds a backslash or a control character"
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:
        return f"file name {name!r} is an absolute path"
    if PurePosixPath(name).name in ("", "."):
        return f"file name {name!r} does not name a file"
    if ".." in PurePosixPath(name).parts:
        return f"file name {name!r} leads outside the dataset folder ('..')"
    return None


def inside(root: Path, name: str, *, folder: str = "") -> Path:
    """`root / folder / name`, or DataError if the name, or a symlink on the way (`folder`
    included), leads outside `root`."""
    problem = name_problem(name)
    target = root / folder / name
    if problem is None and not target.resolve().is_relative_to(root.resolve()):
        problem = f"file name {name!r} leads outside the output folder through a symlink"
    if problem is not None:
        raise DataError(f"refusing to write: {problem}; nothing written", path=root)
    return target


def link_or_copy(src: Path, dst: Path) -> None:
    """Place the content of `src` at `dst`: a hard link when on the same filesystem, else a copy.

    A symlink `src` is resolved first: `os.link` on Linux links the symlink itself (link(2)
    does not follow it), and a relative symlink copied into `dst` would point somewhere else,
    or outside `dst`; `dst` always gets the file's bytes.
    """
    real = src.resolve(strict=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        if not dst.is_symlink() and dst.samefile(real):
            return
        dst.unlink()
    try:
        os.link(real, dst)
    except OSError:
        shutil.copy2(real, dst)
