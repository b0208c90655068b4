"""Shared pieces of the dataset formats: issues found while reading, layout helpers."""

from __future__ import annotations

import enum
import os
import shutil
from dataclasses import dataclass
from pathlib import Path


class Format(enum.StrEnum):
    COCO = "coco"
    VOC = "voc"
    YOLO = "yolo"
    IMAGEFOLDER = "imagefolder"
    POINTS = "points"  # counting: points.json / points.csv beside images/
    SHANGHAITECH = "shanghaitech"  # counting: images/ + ground-truth/GT_*.mat
    MASKS = "masks"  # segmentation: images/ + masks/*.png


@dataclass(frozen=True)
class Issue:
    """A problem found in a dataset: the file concerned and why, in one line."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def link_or_copy(src: Path, dst: Path) -> None:
    """Place `src` at `dst` by hard link when on the same filesystem, else copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if dst.samefile(src):
            return
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
