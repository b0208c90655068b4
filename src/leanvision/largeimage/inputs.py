"""What a user names on the command line, expanded into image files.

An input is a file, a folder (its images, recursively, sorted, hidden files skipped), a glob
(`slides/*.tif`, `**` recursive) or a list file (`.txt`: one path per line, relative to the
list file's folder; blank lines and `#` comments skipped). Files named explicitly or in a
list file are taken as they are: a missing or unreadable one is reported per image by the
pipeline, not here. A folder, glob or list file that yields no image is an error: the user
pointed at the wrong place.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from leanvision.core.errors import DataError
from leanvision.largeimage.readers.choose import GEO_SUFFIXES, SLIDE_SUFFIXES

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}) | SLIDE_SUFFIXES | GEO_SUFFIXES
LIST_SUFFIXES = frozenset({".txt"})
_GLOB_CHARS = frozenset("*?[")


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _folder(root: Path) -> list[Path]:
    found = [p for p in sorted(root.rglob("*")) if p.is_file() and is_image_name(p)]
    if not found:
        raise DataError(f"no image files in this folder (looked for {', '.join(sorted(IMAGE_SUFFIXES))})", path=root)
    return found


def _glob(pattern: str) -> list[Path]:
    found = [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if os.path.isfile(p)]
    found = [p for p in found if is_image_name(p)]
    if not found:
        raise DataError("the pattern matches no image file", path=pattern)
    return found


def _list_file(path: Path) -> list[Path]:
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entry = Path(line).expanduser()
            entries.append(entry if entry.is_absolute() else path.parent / entry)
    if not entries:
        raise DataError("the list file names no image", path=path)
    return entries


def _expand_one(item: str | os.PathLike[str]) -> list[Path]:
    path = Path(item).expanduser()
    if path.is_dir():
        return _folder(path)
    if path.is_file():
        return _list_file(path) if path.suffix.lower() in LIST_SUFFIXES else [path]
    if _GLOB_CHARS & set(str(item)):
        return _glob(os.path.expanduser(os.fspath(item)))
    raise DataError("input not found (expected an image, a folder, a glob or a .txt list of paths)", path=path)


def _unique(paths: Iterator[Path]) -> list[Path]:
    seen: set[Path] = set()
    result = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            result.append(path)
    return result


def expand_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image paths named by `inputs`, in the order given, each once.

    Raises:
        DataError: no inputs, an input that does not exist, or a folder, glob or list
            file with no image in it (the message names it).
    """
    if not inputs:
        raise DataError("no inputs given")
    return _unique(path for item in inputs for path in _expand_one(item))


def output_stems(paths: Sequence[Path]) -> list[str]:
    """A distinct output name per image: its stem; for a repeated stem its file name
    (`slide.tif` beside `slide.jpg`), then `stem-2`, `stem-3`... Compared case-insensitively,
    for case-insensitive file systems."""
    used: set[str] = set()
    stems = []
    for path in paths:
        candidates = itertools.chain([path.stem, path.name], (f"{path.stem}-{k}" for k in itertools.count(2)))
        stem = next(c for c in candidates if c.lower() not in used)
        used.add(stem.lower())
        stems.append(stem)
    return stems
