"""Dataset formats: one in-memory representation per task, any file format in and out.

| task      | representation       | formats                                  |
|-----------|----------------------|------------------------------------------|
| detect    | `DetectionSet`       | COCO JSON, Pascal VOC XML, YOLO txt      |
| classify  | `ClassificationSet`  | ImageFolder, labels.csv (path,label)     |
| count     | `CountingSet`        | points JSON / CSV, ShanghaiTech .mat     |
| segment   | `SegmentationSet`    | PNG masks + classes.json                 |

`detect_format(path)` tells the format from the directory layout; it never guesses when
two layouts fit or none does: it raises with what it looked for.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from leanvision.core import DataError, Task
from leanvision.data.formats.classification import (
    LABELS_CSV,
    ClassificationSet,
    read_imagefolder,
    read_labels_csv,
)
from leanvision.data.formats.coco import ANNOTATIONS_FILE, read_coco, write_coco
from leanvision.data.formats.common import Format, Issue, inside, link_or_copy
from leanvision.data.formats.convert import Conversion, write_conversion
from leanvision.data.formats.counting import (
    GT_DIR,
    POINTS_CSV,
    POINTS_JSON,
    CountingSet,
    PointRecord,
    read_points_csv,
    read_points_json,
    read_shanghaitech,
)
from leanvision.data.formats.detection import DetectionSet, ImageRecord
from leanvision.data.formats.segmentation import CLASSES_JSON, SegmentationSet, read_masks
from leanvision.data.formats.voc import read_voc, write_voc
from leanvision.data.formats.yolo import read_yolo, write_yolo
from leanvision.data.images import is_image

AnyDataset = DetectionSet | ClassificationSet | CountingSet | SegmentationSet

TASK_OF_FORMAT = {
    Format.COCO: Task.DETECT,
    Format.VOC: Task.DETECT,
    Format.YOLO: Task.DETECT,
    Format.IMAGEFOLDER: Task.CLASSIFY,
    Format.LABELS_CSV: Task.CLASSIFY,
    Format.POINTS: Task.COUNT,
    Format.SHANGHAITECH: Task.COUNT,
    Format.MASKS: Task.SEGMENT,
}

# What a dataset of each task is, for messages.
DATASETS_OF_TASK = {
    Task.DETECT: "a detection dataset (COCO, VOC or YOLO)",
    Task.CLASSIFY: "a classification dataset (class folders of images, or labels.csv)",
    Task.COUNT: "a counting dataset (points.json, points.csv or ShanghaiTech)",
    Task.SEGMENT: "a segmentation dataset (masks/ + classes.json)",
}

_READERS = {
    Format.COCO: read_coco,
    Format.VOC: read_voc,
    Format.YOLO: read_yolo,
    Format.IMAGEFOLDER: read_imagefolder,
    Format.LABELS_CSV: read_labels_csv,
    Format.SHANGHAITECH: read_shanghaitech,
    Format.MASKS: read_masks,
}

# How each format is recognised: (format, marker that must exist, what a user should see).
_MARKERS = (
    (Format.COCO, lambda p: (p / ANNOTATIONS_FILE).is_file(), ANNOTATIONS_FILE),
    (Format.VOC, lambda p: (p / "Annotations").is_dir(), "Annotations/"),
    (Format.YOLO, lambda p: (p / "labels").is_dir() and (p / "images").is_dir(), "images/ + labels/"),
    (Format.POINTS, lambda p: (p / POINTS_JSON).is_file() or (p / POINTS_CSV).is_file(),
     f"{POINTS_JSON} or {POINTS_CSV}"),
    (Format.SHANGHAITECH, lambda p: (p / GT_DIR).is_dir() and (p / "images").is_dir(),
     f"images/ + {GT_DIR}/"),
    (Format.MASKS, lambda p: (p / CLASSES_JSON).is_file() and (p / "masks").is_dir(),
     f"masks/ + {CLASSES_JSON}"),
    (Format.LABELS_CSV, lambda p: (p / LABELS_CSV).is_file(), LABELS_CSV),
)


def _looks_like_imagefolder(path: Path) -> bool:
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    with_images = [d for d in subdirs if any(is_image(f) for f in d.iterdir())]
    # An empty class folder still makes an ImageFolder (the reader reports it as a problem).
    empty = [d for d in subdirs if not any(d.iterdir())]
    return bool(with_images) and len(with_images) + len(empty) == len(subdirs) and not any(
        (d / "images").is_dir() for d in subdirs)


def detect_format(path: Path) -> Format:
    """The format of the dataset at `path` (a directory, or a COCO .json file)."""
    if path.is_file() and path.suffix == ".json":
        return Format.COCO
    if not path.is_dir():
        raise DataError("dataset not found", path=path)
    found = [fmt for fmt, present, _ in _MARKERS if present(path)]
    if not found and _looks_like_imagefolder(path):
        found = [Format.IMAGEFOLDER]
    if len(found) > 1:
        raise DataError(f"ambiguous dataset layout: fits {', '.join(found)}", path=path)
    if not found:
        expected = "; ".join(marker for *_, marker in _MARKERS)
        raise DataError(f"no dataset here (looked for {expected}; or class folders of images)", path=path)
    return found[0]


def find_datasets(path: Path) -> list[tuple[Path, Format]]:
    """Datasets at `path` itself, or else in its immediate subfolders (train/, val/, ...)."""
    try:
        return [(path, detect_format(path))]
    except DataError:
        if not path.is_dir():
            raise
    found = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            found.append((sub, detect_format(sub)))
        except DataError:
            continue
    if not found:
        detect_format(path)  # raises the message that says what was looked for
    return found


def read_dataset(path: Path, fmt: Format | None = None) -> AnyDataset:
    """Read the dataset at `path` into its task's in-memory representation."""
    fmt = fmt or detect_format(path)
    if fmt is Format.POINTS:
        return read_points_json(path) if (path / POINTS_JSON).is_file() else read_points_csv(path)
    return _READERS[fmt](path)


def read_of_task(path: Path, task: Task) -> AnyDataset:
    """Read the dataset at `path`; DataError naming what was expected if its format is another task's."""
    fmt = detect_format(path)
    if TASK_OF_FORMAT[fmt] is not Task(task):
        raise DataError(f"expected {DATASETS_OF_TASK[Task(task)]}, found a {fmt} ({TASK_OF_FORMAT[fmt]}) set", path=path)
    return read_dataset(path, fmt)


SetT = TypeVar("SetT", DetectionSet, ClassificationSet, CountingSet, SegmentationSet)


def read_set(path: Path, kind: type[SetT]) -> SetT:
    """Read the dataset at `path` as a `kind` set (its task's formats); DataError for another task's."""
    dataset = read_of_task(path, kind.task)
    assert isinstance(dataset, kind)
    return dataset


def read_detection(path: Path) -> DetectionSet:
    """Read a detection dataset in any detection format."""
    return read_set(path, DetectionSet)


def read_counting(path: Path) -> CountingSet:
    """Read a counting set (points.json / points.csv / ShanghaiTech); DataError for another task's."""
    return read_set(path, CountingSet)


def _outside(record: PointRecord) -> np.ndarray:
    points = np.asarray(record.points, np.float32).reshape(-1, 2)
    if not (record.width and record.height):
        return np.zeros(len(points), bool)
    return ((points[:, 0] < 0) | (points[:, 1] < 0) | (points[:, 0] > record.width)
            | (points[:, 1] > record.height))


def drop_outside_points(dataset: CountingSet) -> tuple[CountingSet, list[Issue]]:
    """The set with every point outside its image (known size) removed, and one Issue per image."""
    records, issues = [], []
    for record in dataset.images:
        outside = _outside(record)
        if outside.any():
            path = dataset.image_root / record.file_name
            issues.append(Issue(str(path), f"{int(outside.sum())} points outside the {record.width}x{record.height} "
                                           "image (left out)"))
            record = replace(record, points=record.points[~outside])
        records.append(record)
    return replace(dataset, images=records), issues


_IMAGE_DIRS = {Format.COCO: "images", Format.VOC: "JPEGImages", Format.YOLO: "images"}
_WRITERS = {Format.COCO: write_coco, Format.VOC: write_voc, Format.YOLO: write_yolo}


def write_detection(dataset: DetectionSet, path: Path, fmt: Format, *, copy_images: bool = True) -> Path:
    """Write labels in `fmt` under `path`, placing the images in that format's image folder.

    Raises:
        DataError: a file name would lead outside `path` (`..`, absolute, through a
            symlink); nothing is written then. `fmt` is not a detection format.
    """
    if fmt not in _WRITERS:
        raise DataError(f"{fmt} is not a detection format (use coco, voc or yolo)", path=path)
    targets = [inside(path, record.file_name, folder=_IMAGE_DIRS[fmt]) for record in dataset.images]
    path.mkdir(parents=True, exist_ok=True)
    if copy_images:
        for record, target in zip(dataset.images, targets, strict=True):
            src = dataset.image_path(record)
            if src.exists():
                link_or_copy(src, target)
    return _WRITERS[fmt](dataset, path)


def convert_detection(src: Path, dst: Path, fmt: Format, *, skip_bad: bool = False) -> Conversion:
    """Convert the detection set at `src` to `fmt` in `dst`: the whole clean set or nothing
    (`skip_bad`: the clean part, every loss accounted for), replacing a previous conversion whole.
    See `formats.convert`."""
    return write_conversion(read_detection(src), src, dst, fmt, skip_bad=skip_bad, write=write_detection)


__all__ = [
    "TASK_OF_FORMAT",
    "AnyDataset",
    "ClassificationSet",
    "Conversion",
    "CountingSet",
    "DetectionSet",
    "Format",
    "ImageRecord",
    "Issue",
    "PointRecord",
    "SegmentationSet",
    "convert_detection",
    "detect_format",
    "drop_outside_points",
    "find_datasets",
    "read_counting",
    "read_dataset",
    "read_detection",
    "read_set",
    "write_detection",
]
