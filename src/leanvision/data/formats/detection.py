"""The in-memory detection dataset: one `DetectionSet` whatever the file format."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from leanvision.core import Detections, Task
from leanvision.data.formats.common import Issue

# Largest |coordinate| a label may hold, in pixels: beyond any image side (gigapixel slides
# are ~1e5 px), small enough that areas of such boxes stay finite in float32.
COORD_LIMIT_PX = 1e7
# Tolerance for "box outside the image": annotation tools round to whole pixels.
BOX_TOLERANCE_PX = 0.5


@dataclass(eq=False)
class ImageRecord:
    """One image and its ground-truth boxes.

    Attributes:
        file_name: path relative to the set's `image_root` (may contain subfolders).
        width, height: image size in pixels as stated by the labels (0 if unknown).
        targets: ground-truth boxes, xyxy pixels, scores 1.0; empty for a negative image.
        id: image id (COCO's, or assigned in file-name order).
        crowd: (N,) bool, COCO `iscrowd`: the box covers a crowd region; evaluation ignores
            detections matched to it (pycocotools). None: no crowd box.
        difficult: (N,) bool, VOC `difficult`: evaluation ignores the box and detections
            matched to it (VOC devkit). None: no difficult box.
        sources: per box, (file, how the box is written there), e.g. ("annotations.json",
            "annotation 7 bbox [2, 3, 18, 27]"), for messages; empty when made in memory.
    """

    file_name: str
    width: int
    height: int
    targets: Detections
    id: int
    crowd: np.ndarray | None = None
    difficult: np.ndarray | None = None
    sources: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.targets)
        for name in ("crowd", "difficult"):
            flags = np.zeros(n, bool) if getattr(self, name) is None else np.asarray(getattr(self, name), bool)
            if flags.shape != (n,):
                raise ValueError(f"{name} flags must be one per box ({n}), got shape {flags.shape}")
            setattr(self, name, flags)
        if self.sources and len(self.sources) != n:
            raise ValueError(f"sources must be one per box ({n}), got {len(self.sources)}")

    def select(self, keep: np.ndarray) -> ImageRecord:
        """The record with only the boxes where `keep` (a boolean mask or index array) points."""
        keep = np.arange(len(self.targets))[keep]
        sources = tuple(self.sources[i] for i in keep) if self.sources else ()
        return dataclasses.replace(self, targets=self.targets[keep], crowd=self.crowd[keep],
                                   difficult=self.difficult[keep], sources=sources)

    def source(self, index: int) -> tuple[str, str]:
        """(file, box as written there) of box `index`; xyxy pixels when made in memory."""
        if self.sources:
            return self.sources[index]
        x1, y1, x2, y2 = self.targets.boxes[index].tolist()
        return self.file_name, f"box {index} [{x1:g}, {y1:g}, {x2:g}, {y2:g}]"

    def box_problems(self, width: int, height: int) -> list[tuple[int, str]]:
        """(box index, what is wrong) for boxes of no positive area or outside a `width` x
        `height` image (0: unknown size, not checked)."""
        problems = []
        for i, (x1, y1, x2, y2) in enumerate(self.targets.boxes.astype(np.float64).tolist()):
            if x2 < x1 or y2 < y1:
                problems.append((i, "has negative " + ("width" if x2 < x1 else "height")))
            elif x2 == x1 or y2 == y1:
                problems.append((i, "has zero " + ("width" if x2 == x1 else "height")))
            elif width and height and (min(x1, y1) < -BOX_TOLERANCE_PX or x2 > width + BOX_TOLERANCE_PX
                                       or y2 > height + BOX_TOLERANCE_PX):
                problems.append((i, f"is outside the {width}x{height} image"))
        return problems


def box_values_problem(xyxy: list[float]) -> str | None:
    """Why four xyxy pixel coordinates cannot be a box (not finite, absurdly large), or None."""
    if not all(np.isfinite(xyxy)):
        return "has a coordinate that is not a finite number"
    if max(abs(v) for v in xyxy) > COORD_LIMIT_PX:
        return f"has a coordinate beyond {COORD_LIMIT_PX:g} px"
    return None


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

    def without_partly_read(self) -> tuple[DetectionSet, list[Issue]]:
        """The set without the images some of whose boxes could not be read (`issues` naming
        an `image`), and one Issue per image left out. Scored with a box missing, an image
        counts the model's find as a false positive; trained on, it teaches it as background."""
        lost: dict[str, int] = {}
        for issue in self.issues:
            if issue.image:
                lost[issue.image] = lost.get(issue.image, 0) + issue.objects
        if not lost:
            return self, []
        kept = [r for r in self.images if r.file_name not in lost]
        left = [Issue(str(self.image_root / r.file_name),
                      f"left out whole: {lost[r.file_name]} of its {len(r.targets) + lost[r.file_name]} boxes could "
                      "not be read (listed above)", images=1, objects=len(r.targets))
                for r in self.images if r.file_name in lost]
        return self.replace(images=kept), left
