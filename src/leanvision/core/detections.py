"""`Detections`: boxes, scores and labels of one image, indexed together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IndexLike = np.ndarray | slice | int | Sequence[int]


@dataclass(frozen=True, eq=False)
class Detections:
    """Boxes of one image with their scores and class labels.

    Attributes:
        boxes: (N, 4) float32, xyxy, in pixels of the image they refer to.
        scores: (N,) float32 confidence; ground truth uses 1.0.
        labels: (N,) int64 class index into the dataset's or model card's class list.

    Indexing with a boolean mask, an index array, a slice or an int indexes every field
    at once and returns a new `Detections` (an int keeps the batch axis: length 1).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(labels):
            raise ValueError(
                f"Detections fields differ in length: boxes {len(boxes)}, "
                f"scores {len(scores)}, labels {len(labels)}"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @classmethod
    def from_boxes(cls, boxes: np.ndarray, labels: np.ndarray | Sequence[int]) -> Detections:
        """Ground truth: `boxes` (N, 4) xyxy with `labels` (N,), every score 1.0."""
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        return cls(boxes, np.ones(len(labels), np.float32), labels)

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.labels for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: IndexLike) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 or None)
        return Detections(self.boxes[index], self.scores[index], self.labels[index])

    def __repr__(self) -> str:
        return f"Detections(n={len(self)}, labels={np.unique(self.labels).tolist()})"

    def shift(self, dx: float, dy: float) -> Detections:
        """Translate every box by (dx, dy) pixels, e.g. from tile to image coordinates."""
        offset = np.array([dx, dy, dx, dy], np.float32)
        return Detections(self.boxes + offset, self.scores, self.labels)

    def scale(self, sx: float, sy: float | None = None) -> Detections:
        """Multiply x coordinates by `sx` and y by `sy` (default `sx`)."""
        sy = sx if sy is None else sy
        factor = np.array([sx, sy, sx, sy], np.float32)
        return Detections(self.boxes * factor, self.scores, self.labels)

    def clip(self, width: float, height: float) -> Detections:
        """Clip boxes to the image [0, width] x [0, height]."""
        limit = np.array([width, height, width, height], np.float32)
        return Detections(np.clip(self.boxes, 0, limit), self.scores, self.labels)

    @property
    def areas(self) -> np.ndarray:
        """(N,) float32 box areas in square pixels (0 for degenerate boxes)."""
        wh = np.clip(self.boxes[:, 2:] - self.boxes[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    def equals(self, other: Detections, *, atol: float = 0.0) -> bool:
        """Same length, labels and (within `atol`) boxes and scores, in the same order."""
        return (
            len(self) == len(other)
            and np.array_equal(self.labels, other.labels)
            and np.allclose(self.boxes, other.boxes, rtol=0, atol=atol)
            and np.allclose(self.scores, other.scores, rtol=0, atol=atol)
        )

    def to_records(self, class_names: Sequence[str] | None = None) -> list[dict]:
        """One JSON-ready dict per box: bbox xyxy, score, label (and class name)."""
        records = []
        for box, score, label in zip(self.boxes.tolist(), self.scores.tolist(), self.labels.tolist(), strict=True):
            record = {"bbox_xyxy": box, "score": score, "label": label}
            if class_names is not None:
                record["class_name"] = class_names[label]
            records.append(record)
        return records
