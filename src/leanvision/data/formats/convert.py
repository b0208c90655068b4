"""Detection set conversion: the whole clean set or nothing, into a folder of its own.

`convert_detection` reads the source, then checks what the labels alone cannot tell: each
image file exists, inside the dataset folder (not through a symlink leading out), and its
header states the size the labels give (YOLO normalises by it), and each box has a positive
area inside its image. Images are placed in DST as their bytes (hard link or copy), never
as symlinks. A source with any problem is refused
before anything is written; with `skip_bad` the clean part is written and every image and
object left out is accounted for. The output is built in a hidden sibling folder and moved
over DST in one rename, so DST holds one whole conversion, never a mix with older labels;
a DST holding anything but a previous conversion is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from leanvision.core import DataError
from leanvision.core.errors import plural
from leanvision.core.io import atomic_write_text, replace_dir, staging_dir
from leanvision.data.formats.common import Format, Issue
from leanvision.data.formats.detection import DetectionSet, ImageRecord
from leanvision.data.images import escape_problem, read_size

# Written into every conversion: what marks a DST that a new conversion may replace.
MARKER = ".leanvision-convert.json"

# Per-box flags each format cannot hold; boxes carrying them are left out (and counted).
_UNHELD_FLAGS = {Format.COCO: (), Format.VOC: ("crowd",), Format.YOLO: ("crowd", "difficult")}


@dataclass
class Conversion:
    """What a conversion wrote and what it left out.

    Attributes:
        written: the set as written (its images and objects are the summary's counts).
        dropped: every problem of the source, each with the images / objects it cost
            (empty unless `skip_bad`).
        unheld: per flag ("crowd", "difficult"), boxes left out because the target format
            cannot mark them.
    """

    written: DetectionSet
    dropped: list[Issue] = field(default_factory=list)
    unheld: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_images(self) -> int:
        return sum(i.images for i in self.dropped)

    @property
    def dropped_objects(self) -> int:
        return sum(i.objects for i in self.dropped)


def _clean_record(dataset: DetectionSet, record: ImageRecord, roots: tuple[Path, ...]
                  ) -> tuple[ImageRecord | None, list[Issue]]:
    """The record at its image's real size with only sound boxes, and the issues of the rest."""
    image_path = dataset.image_path(record)
    n = len(record.targets)
    if not image_path.is_file():
        return None, [Issue(str(image_path), "image file is missing", images=1, objects=n)]
    escape = escape_problem(image_path, roots)
    if escape is not None:
        return None, [Issue(str(image_path), escape, images=1, objects=n)]
    try:
        width, height = read_size(image_path)
    except Exception as exc:  # any decoder failure is a finding, not a crash
        reason = " ".join((exc.message if isinstance(exc, DataError) else str(exc)).split()) or type(exc).__name__
        return None, [Issue(str(image_path), f"cannot read the image header: {reason}", images=1, objects=n)]
    if record.width and record.height and (record.width, record.height) != (width, height):
        return None, [Issue(str(image_path), f"size in the labels is {record.width}x{record.height}, the image is "
                                             f"{width}x{height}: its boxes cannot be placed", images=1, objects=n)]
    record = replace(record, width=width, height=height)
    problems = record.box_problems(width, height)
    issues = []
    for index, reason in problems:
        where, written = record.source(index)
        issues.append(Issue(where, f"{written} {reason} ({record.file_name})", objects=1))
    keep = np.ones(n, bool)
    keep[[i for i, _ in problems]] = False
    return record.select(keep), issues


def clean_part(dataset: DetectionSet, folder: Path) -> tuple[DetectionSet, list[Issue]]:
    """The part of `dataset` (read from `folder`) a conversion can write, and every problem of
    the rest (reading issues included), each with what it costs."""
    issues = list(dataset.issues)
    records = []
    roots = (folder, dataset.image_root)
    for record in dataset.images:
        kept, found = _clean_record(dataset, record, roots)
        issues += found
        if kept is not None:
            records.append(kept)
    return dataset.replace(images=records, issues=[]), issues


def _check_destination(src: Path, dst: Path) -> None:
    """DataError unless `dst` is absent, empty, or a previous conversion not holding `src`."""
    if dst.exists() and not dst.is_dir():
        raise DataError("the output path exists and is not a directory", path=dst)
    if not dst.is_dir():
        return
    if src.resolve().is_relative_to(dst.resolve()):
        raise DataError(f"the output folder holds the source {src}; choose another DST", path=dst)
    held = sorted(p.name for p in dst.iterdir())
    if held and MARKER not in held:
        raise DataError(f"refusing to write into a folder that is not a previous conversion (it holds "
                        f"{held[0]!r}); choose a new or empty DST", path=dst)


def _one_line(issue: Issue) -> str:
    return " ".join(str(issue).split())


def write_conversion(dataset: DetectionSet, src: Path, dst: Path, fmt: Format, *, skip_bad: bool,
                     write: Callable[[DetectionSet, Path, Format], object]) -> Conversion:
    """Write `dataset` (read from `src`) as `fmt` in `dst` with `write`, replacing a previous conversion whole.

    `formats.convert_detection` is the entry point: it reads the source and passes its writer,
    so this module does not import the package that imports it.

    Raises:
        DataError: the source has problems (and not `skip_bad`), an image name would lead
            outside `dst`, or `dst` holds something other than a previous conversion.
            Nothing is written then.
    """
    clean, dropped = clean_part(dataset, src if src.is_dir() else src.parent)
    if dropped and not skip_bad:
        raise DataError(f"the source has {plural(len(dropped), 'problem')}, nothing written (first: {_one_line(dropped[0])}); "
                        f"`leanvision data check` lists them, --skip-bad converts the clean part", path=src)
    _check_destination(src, dst)
    unheld = {flag: int(sum(getattr(r, flag).sum() for r in clean.images)) for flag in _UNHELD_FLAGS[fmt]}
    dst.parent.mkdir(parents=True, exist_ok=True)
    with staging_dir(dst) as staging:
        write(clean, staging, fmt)
        written = clean.replace(images=[r.select(~_unheld_mask(r, fmt)) for r in clean.images])
        atomic_write_text(staging / MARKER, json.dumps({
            "source": str(src), "format": str(fmt), "images": len(written.images),
            "objects": written.num_objects, "left_out": [str(i) for i in dropped],
        }, indent=2) + "\n")
        replace_dir(staging, dst)
    return Conversion(written, dropped, {k: v for k, v in unheld.items() if v})


def _unheld_mask(record: ImageRecord, fmt: Format) -> np.ndarray:
    mask = np.zeros(len(record.targets), bool)
    for flag in _UNHELD_FLAGS[fmt]:
        mask |= getattr(record, flag)
    return mask
