"""Classification sets: ImageFolder (`root/<class name>/<image>`) and a `labels.csv` of `path,label` rows.

In `labels.csv` paths are relative to the CSV's folder (an absolute path or one leading out
of it is refused); the classes are the sorted label names, as ImageFolder sorts folders.
Read with the csv module: a header row `path,label` is required so that a file of another
layout is refused rather than misread.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from leanvision.core import DataError, Task
from leanvision.data.formats.common import Issue, inside, link_or_copy, name_problem
from leanvision.data.images import is_image


@dataclass(eq=False)
class ClassificationSet:
    """Images with one label each.

    Attributes:
        classes: class names in label order (ImageFolder: sorted folder names).
        items: (file name relative to `image_root`, label) pairs.
        image_root: the ImageFolder root.
    """

    task: ClassVar[Task] = Task.CLASSIFY  # the task whose sets these are

    classes: tuple[str, ...]
    items: list[tuple[str, int]]
    image_root: Path
    issues: list[Issue] = field(default_factory=list)

    def image_files(self) -> list[Path]:
        """Every image file of the set, in its order."""
        return [self.image_root / name for name, _ in self.items]


def read_imagefolder(path: Path) -> ClassificationSet:
    if not path.is_dir():
        raise DataError("not a directory", path=path)
    class_dirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError("no class folders found (expected root/<class>/<image>)", path=path)
    issues, items = [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if is_image(p)]
        issues += [Issue(str(p), "not an image file (unknown extension)") for p in files if not is_image(p)]
        if not images:
            issues.append(Issue(str(class_dir), "class folder has no images"))
        items += [(p.relative_to(path).as_posix(), label) for p in images]
    return ClassificationSet(tuple(p.name for p in class_dirs), items, path, issues)


def onto_classes(dataset: ClassificationSet, classes: Sequence[str], *, path: Path) -> ClassificationSet:
    """`dataset` with its labels renumbered onto `classes` (e.g. the model's) by name;
    DataError naming a class that `classes` does not have."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = [name for name in dataset.classes if name not in index]
    if unknown:
        raise DataError(f"class '{unknown[0]}' is not among the model's {len(classes)} classes "
                        f"({len(unknown)} such)", path=path)
    items = [(name, index[dataset.classes[label]]) for name, label in dataset.items]
    return replace(dataset, classes=tuple(classes), items=items)


LABELS_CSV = "labels.csv"
CSV_HEADER = ("path", "label")


def read_labels_csv(path: Path) -> ClassificationSet:
    """A folder holding `labels.csv` (`path,label` rows); DataError naming the line of a bad row
    (a missing or out-of-folder file, an empty label, a row of the wrong width)."""
    root = path if path.is_dir() else path.parent
    csv_path = root / LABELS_CSV if path.is_dir() else path
    try:
        with csv_path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the labels: {exc}", path=csv_path) from None
    if not rows or tuple(c.strip().lower() for c in rows[0]) != CSV_HEADER:
        raise DataError("the first row must be the header 'path,label'", path=csv_path)
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != 2 or not row[1].strip():
            raise DataError(f"line {line}: expected 'path,label', got {','.join(row)!r}", path=csv_path)
        name, label = row[0].strip(), row[1].strip()
        if (problem := name_problem(name)) is not None:
            raise DataError(f"line {line}: {problem}", path=csv_path)
        if not (root / name).is_file():
            raise DataError(f"line {line}: image {name} not found", path=csv_path)
        if not is_image(root / name):
            raise DataError(f"line {line}: {name} is not an image file (unknown extension)", path=csv_path)
        pairs.append((name, label))
    if not pairs:
        raise DataError("no labelled images", path=csv_path)
    classes = tuple(sorted({label for _, label in pairs}))
    index = {name: i for i, name in enumerate(classes)}
    return ClassificationSet(classes, [(name, index[label]) for name, label in pairs], root)


def write_imagefolder(dataset: ClassificationSet, path: Path) -> Path:
    """Place every image under `path/<class>/` (hard link or copy); DataError, with nothing
    written, if a class or file name would lead outside `path`, or two images of a class
    would land on one file name (the folders they came from are not kept)."""
    targets = [inside(path, f"{dataset.classes[label]}/{Path(rel).name}") for rel, label in dataset.items]
    seen: dict[Path, str] = {}
    for (rel, _), target in zip(dataset.items, targets, strict=True):
        if target in seen:  # two images of one class with the same file name, from different folders
            raise DataError(f"refusing to write: {seen[target]} and {rel} would both be "
                            f"{target.relative_to(path).as_posix()}; nothing written", path=path)
        seen[target] = rel
    for (rel, _), target in zip(dataset.items, targets, strict=True):
        link_or_copy(dataset.image_root / rel, target)
    return path
