"""ImageFolder classification sets: `root/<class name>/<image>`, one folder per class."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from leanvision.core import DataError, Task
from leanvision.data.formats.common import Issue, inside, link_or_copy
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


def write_imagefolder(dataset: ClassificationSet, path: Path) -> Path:
    """Place every image under `path/<class>/` (hard link or copy); DataError, with nothing
    written, if a class or file name would lead outside `path`."""
    targets = [inside(path, f"{dataset.classes[label]}/{Path(rel).name}") for rel, label in dataset.items]
    for (rel, _), target in zip(dataset.items, targets, strict=True):
        link_or_copy(dataset.image_root / rel, target)
    return path
