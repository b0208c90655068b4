"""The in-memory detection dataset: one `DetectionSet` whatever the file format."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from leanvision.core import Detections, Task
from leanvision.data.formats.common import Issue


@dataclass(eq=False)
class ImageRecord:
    """One image and its ground-truth boxes.

    Attributes:
        file_name: path relative to the set's `image_root` (may contain subfolders).
        width, height: image size in pixels as stated by the labels (0 if unknown).
        targets: ground-truth boxes, xyxy pixels, scores 1.0; empty for a negative image.
        id: image id (COCO's, or assigned in file-name order).
    """

    file_name: str
    width: int
    height: int
    targets: Detections
    id: int


@dataclass(eq=False)
class DetectionSet:
    """A detection dataset.

    Attributes:
        classes: class names; label i is classes[i].
        images: the images, negatives (no boxes) included.
        image_root: directory the records' file names are relative to.
        issues: problems met while reading (unknown class, duplicate id, unparsable
            label file, ...). The affected objects or records are left out; `data check`
            reports these, other commands warn or refuse.
    """

    task: ClassVar[Task] = Task.DETECT  # the task whose sets these are

    classes: tuple[str, ...]
    images: list[ImageRecord]
    image_root: Path
    issues: list[Issue] = field(default_factory=list)

    def image_files(self) -> list[Path]:
        """Every image file of the set, in its order."""
        return [self.image_root / r.file_name for r in self.images]

    def image_path(self, record: ImageRecord) -> Path:
        return self.image_root / record.file_name

    @property
    def num_objects(self) -> int:
        return sum(len(r.targets) for r in self.images)

    def replace(self, **changes) -> DetectionSet:
        return dataclasses.replace(self, **changes)
