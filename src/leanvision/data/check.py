"""`data check`: find every problem in a dataset, never stopping at the first.

Checks, per dataset found under the given directory (itself or its train/, val/, ...):
- label files that do not parse, unknown classes, duplicate ids (from the readers);
- images missing, unreadable, corrupt or truncated (full decode, reduced scale for JPEG);
- image size stated in the labels differing from the file;
- boxes outside the image or of zero or negative width / height, shown as their label file
  writes them; points outside the image;
- image file names that lead outside the dataset folder (`..`, absolute; from the readers),
  and image files reached through a symlink leading outside it (`images.escape_problem`);
- masks of the wrong size or with values that are neither a class nor the ignore index.
Decoding runs in a thread pool (the decoders release the GIL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leanvision.data.formats import (
    TASK_OF_FORMAT,
    ClassificationSet,
    CountingSet,
    DetectionSet,
    Format,
    ImageRecord,
    Issue,
    SegmentationSet,
    find_datasets,
    read_dataset,
)
from leanvision.data.images import escape_problem, read_size, verify_image
from leanvision.data.stats import class_long_tail


@dataclass
class DatasetReport:
    """What `check` found in one dataset."""

    path: str
    format: str
    task: str
    images: int
    objects: int
    issues: list[Issue] = field(default_factory=list)
    long_tail: dict | None = None  # classification sets: `stats.class_long_tail`

    def to_dict(self) -> dict:
        return {
            "path": self.path, "format": self.format, "task": self.task, "images": self.images,
            "objects": self.objects, "problems": [{"path": i.path, "reason": i.reason} for i in self.issues],
            **({"long_tail": self.long_tail} if self.long_tail is not None else {}),
        }


ProgressFn = Callable[[int, int], None]


def check(path: Path, *, workers: int = 2, progress: ProgressFn | None = None) -> list[DatasetReport]:
    """Check every dataset at or directly under `path`; returns one report per dataset."""
    reports = []
    for ds_path, fmt in find_datasets(path):
        dataset = read_dataset(ds_path, fmt)
        reports.append(_check_dataset(ds_path, fmt, dataset, workers, progress))
    return reports


def _check_dataset(path: Path, fmt: Format, dataset, workers: int, progress: ProgressFn | None) -> DatasetReport:
    roots = (path if path.is_dir() else path.parent, dataset.image_root)
    jobs = list(_image_jobs(dataset, roots))
    issues = list(dataset.issues)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, found in enumerate(pool.map(lambda job: job(), jobs), start=1):
            issues.extend(found)
            if progress is not None:
                progress(done, len(jobs))
    images, objects = _counts(dataset)
    long_tail = class_long_tail(dataset)[1] if isinstance(dataset, ClassificationSet) else None
    return DatasetReport(str(path), str(fmt), str(TASK_OF_FORMAT[fmt]), images, objects, issues, long_tail)


def _counts(dataset) -> tuple[int, int]:
    if isinstance(dataset, DetectionSet):
        return len(dataset.images), dataset.num_objects
    if isinstance(dataset, CountingSet):
        return len(dataset.images), sum(len(r.points) for r in dataset.images)
    return len(dataset.items), len(dataset.items)


Job = Callable[[], list[Issue]]


def _image_jobs(dataset, roots: tuple[Path, ...]) -> Iterator[Job]:
    """One job per image; an image reached through a symlink leading outside `roots` (the
    dataset folder, its image folder) is that problem alone: it is not the dataset's file."""
    if isinstance(dataset, DetectionSet):
        for record in dataset.images:
            path = dataset.image_path(record)
            yield _outside(path, roots) or (lambda p=path, r=record: _check_detection_image(p, r))
    elif isinstance(dataset, CountingSet):
        for record in dataset.images:
            path = dataset.image_root / record.file_name
            yield _outside(path, roots) or (
                lambda p=path, r=record: _check_points_image(p, r.width, r.height, r.points))
    elif isinstance(dataset, ClassificationSet):
        for rel, _ in dataset.items:
            path = dataset.image_root / rel
            yield _outside(path, roots) or (lambda p=path: _decode_issues(p))
    elif isinstance(dataset, SegmentationSet):
        for image_rel, mask_rel in dataset.items:
            yield _outside(dataset.image_root / image_rel, roots) or (
                lambda i=image_rel, m=mask_rel: _check_mask(dataset, i, m))


def _outside(image_path: Path, roots: tuple[Path, ...]) -> Job | None:
    """A job reporting that `image_path` leads outside `roots`, or None if it does not."""
    problem = escape_problem(image_path, roots)
    return None if problem is None else (lambda: [Issue(str(image_path), problem)])


def _decode_issues(image_path: Path) -> list[Issue]:
    reason = verify_image(image_path)
    return [] if reason is None else [Issue(str(image_path), reason)]


def _size_issues(image_path: Path, width: int, height: int) -> tuple[list[Issue], tuple[int, int] | None]:
    """Decode problems, else a label/file size mismatch; returns the file's size if readable."""
    issues = _decode_issues(image_path)
    if issues:
        return issues, None
    actual = read_size(image_path)
    if width and height and actual != (width, height):
        issues.append(Issue(str(image_path), f"size in the labels is {width}x{height}, the image is {actual[0]}x{actual[1]}"))
    return issues, actual


def _check_detection_image(image_path: Path, record: ImageRecord) -> list[Issue]:
    """Decode and size problems, then each box as written in its label file (COCO xywh with
    the annotation id, VOC 1-based pixels, YOLO normalised with the line number)."""
    issues, actual = _size_issues(image_path, record.width, record.height)
    w, h = (record.width, record.height) if record.width and record.height else (actual or (0, 0))
    for index, reason in record.box_problems(w, h):
        where, written = record.source(index)
        in_memory = where == record.file_name  # no label file: name the image
        issues.append(Issue(str(image_path) if in_memory else where,
                            f"{written} {reason}" + ("" if in_memory else f" ({record.file_name})")))
    return issues


def _check_points_image(image_path: Path, width: int, height: int, points: np.ndarray) -> list[Issue]:
    issues, actual = _size_issues(image_path, width, height)
    w, h = (width, height) if width and height else (actual or (0, 0))
    if w and h and len(points):
        outside = (points[:, 0] < 0) | (points[:, 1] < 0) | (points[:, 0] > w) | (points[:, 1] > h)
        if outside.any():
            issues.append(Issue(str(image_path), f"{int(outside.sum())} points are outside the {w}x{h} image"))
    return issues


def _check_mask(dataset: SegmentationSet, image_rel: str, mask_rel: str) -> list[Issue]:
    import cv2

    image_path, mask_path = dataset.image_root / image_rel, dataset.mask_root / mask_rel
    issues = _decode_issues(image_path) + _decode_issues(mask_path)
    if issues:
        return issues
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2:
        return [Issue(str(mask_path), "mask must be a single-channel PNG of class indices")]
    if (mask.shape[1], mask.shape[0]) != read_size(image_path):
        issues.append(Issue(str(mask_path), f"mask is {mask.shape[1]}x{mask.shape[0]}, its image is {'x'.join(map(str, read_size(image_path)))}"))
    values = np.unique(mask)
    bad = values[(values >= len(dataset.classes)) & (values != dataset.ignore_index)]
    if len(bad):
        issues.append(Issue(str(mask_path), f"mask values {bad.tolist()} are neither classes (0..{len(dataset.classes) - 1}) nor ignore ({dataset.ignore_index})"))
    return issues
