"""Segmentation sets: `images/<stem>.<ext>` with `masks/<stem>.png` and `classes.json`.

Masks are single-channel PNGs of class indices; `ignore_index` (default 255) marks pixels
that are not scored or trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from leanvision.core import DataError, Task
from leanvision.core.io import atomic_write_text
from leanvision.data.formats.common import Issue
from leanvision.data.images import list_images

CLASSES_JSON = "classes.json"
DEFAULT_IGNORE_INDEX = 255


@dataclass(eq=False)
class SegmentationSet:
    """Attributes:
        classes: class names; mask value i is classes[i].
        items: (image file name, mask file name), relative to `image_root` / `mask_root`.
        ignore_index: mask value that is not scored.
    """

    task: ClassVar[Task] = Task.SEGMENT  # the task whose sets these are

    classes: tuple[str, ...]
    items: list[tuple[str, str]]
    image_root: Path
    mask_root: Path
    ignore_index: int = DEFAULT_IGNORE_INDEX
    issues: list[Issue] = field(default_factory=list)

    def image_files(self) -> list[Path]:
        """Every image file of the set, in its order."""
        return [self.image_root / image for image, _ in self.items]


def read_masks(path: Path) -> SegmentationSet:
    classes_path = path / CLASSES_JSON
    try:
        meta = json.loads(classes_path.read_text())
        classes, ignore_index = meta["classes"], meta.get("ignore_index", DEFAULT_IGNORE_INDEX)
    except FileNotFoundError:
        raise DataError("segmentation set has no classes.json", path=classes_path) from None
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read classes: {exc}", path=classes_path) from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DataError(f"'classes' must be a list of names, got {str(classes)[:80]}", path=classes_path)
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool) or ignore_index < 0:
        raise DataError(f"'ignore_index' must be a whole number >= 0, got {ignore_index!r}", path=classes_path)
    classes = tuple(classes)
    image_root, mask_root = path / "images", path / "masks"
    items, issues = [], []
    for image_path in list_images(image_root):
        rel = image_path.relative_to(image_root)
        mask_rel = rel.with_suffix(".png")
        if not (mask_root / mask_rel).exists():
            issues.append(Issue(str(image_path), f"no mask {mask_root / mask_rel}"))
            continue
        items.append((rel.as_posix(), mask_rel.as_posix()))
    return SegmentationSet(classes, items, image_root, mask_root, ignore_index, issues)


def write_classes(dataset: SegmentationSet, path: Path) -> Path:
    meta = {"classes": list(dataset.classes), "ignore_index": dataset.ignore_index}
    atomic_write_text(path / CLASSES_JSON, json.dumps(meta, indent=2) + "\n")
    return path
