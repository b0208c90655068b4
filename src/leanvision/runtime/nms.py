"""Non-maximum suppression in numpy: hard, Soft-NMS (linear, Gaussian) and Matrix NMS.

Written by hand: the deployment side has no torch (torchvision.ops), and no torch-free
library we ship offers Soft-NMS or Matrix NMS on numpy arrays. Hard NMS lives here too so
that it has torchvision's exact semantics (a box is dropped when IoU > threshold; scores
ordered by a stable sort) and shares the class handling of the soft variants. Boxes are
(N, 4) xyxy, scores (N,), labels (N,) int; every function returns indices into its
inputs, best first.

Class-aware suppression uses torchvision's coordinate-offset trick: each class is moved by
`label * (max coordinate + 1)`, so boxes of different classes never overlap and one
suppression pass handles every class. Pass `labels=None` for class-agnostic suppression.
"""

from __future__ import annotations

import enum

import numpy as np

from leanvision.core.boxes import box_iou


class SoftKind(enum.StrEnum):
    LINEAR = "linear"
    GAUSSIAN = "gaussian"


class _Columns:
    """Boxes as contiguous coordinate columns plus areas, for one-against-many overlaps.

    Areas are (x2 - x1) * (y2 - y1) without clipping, as in torchvision's kernel. Slicing
    the columns gives views, so comparing a box with "every later box" copies nothing.
    """

    def __init__(self, boxes: np.ndarray) -> None:
        self.x1, self.y1, self.x2, self.y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
        self.area = (self.x2 - self.x1) * (self.y2 - self.y1)

    def take(self, keep: np.ndarray) -> _Columns:
        """The columns of the boxes selected by `keep` (a mask or index array)."""
        out = object.__new__(_Columns)
        out.x1, out.y1, out.x2, out.y2, out.area = (a[keep] for a in (self.x1, self.y1, self.x2, self.y2, self.area))
        return out

    def inter_union(self, i: int, rest: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Intersections and unions of box `i` with the boxes `rest`."""
        w = np.minimum(self.x2[i], self.x2[rest]) - np.maximum(self.x1[i], self.x1[rest])
        h = np.minimum(self.y2[i], self.y2[rest]) - np.maximum(self.y1[i], self.y1[rest])
        inter = np.maximum(w, 0) * np.maximum(h, 0)
        return inter, self.area[rest] + self.area[i] - inter

    def overlaps(self, i: int, rest: slice | np.ndarray, iou_threshold: float) -> np.ndarray:
        """IoU > threshold, as inter > threshold * union: no division, and two empty boxes
        (0/0, NaN in torchvision's kernel, which no threshold exceeds) do not overlap."""
        inter, union = self.inter_union(i, rest)
        return inter > iou_threshold * union

    def iou(self, i: int, rest: slice | np.ndarray) -> np.ndarray:
        """IoU of box `i` with the boxes `rest`; 0 where both are empty."""
        inter, union = self.inter_union(i, rest)
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _offset_boxes(boxes: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if labels is None or len(boxes) == 0:
        return boxes
    offsets = np.asarray(labels, np.float64) * (boxes.max() + 1)
    return boxes + offsets[:, None]


def _by_score(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(scores), kind="stable")


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    labels: np.ndarray | None = None,
    *,
    max_detections: int | None = None,
) -> np.ndarray:
    """Greedy hard NMS (torchvision semantics): drop a box whose IoU with a kept,
    higher-scoring box of its class is > `iou_threshold`.

    Greedy picks come in decreasing score order and never change, so stopping after
    `max_detections` picks gives the first `max_detections` of the full result.

    Returns:
        (K,) int64 indices of the kept boxes, in decreasing score order.
    """
    order = _by_score(scores)
    cols = _Columns(_offset_boxes(boxes, labels)[order])
    limit = len(order) if max_detections is None else max_detections
    removed = np.zeros(len(order), bool)
    keep: list[int] = []
    # Walk the boxes best first; a kept box removes the later boxes it overlaps. Comparing
    # with all later boxes (views, no compaction) measured faster than shrinking the arrays.
    for i in range(len(order)):
        if len(keep) == limit:
            break
        if removed[i]:
            continue
        keep.append(order[i])
        removed[i + 1 :] |= cols.overlaps(i, slice(i + 1, None), iou_threshold)
    return np.asarray(keep, np.int64)


def soft_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    kind: SoftKind,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    max_detections: int | None = None,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS (Bodla et al., ICCV 2017): decay overlapping scores instead of dropping boxes.

    Repeatedly takes the highest remaining score, then multiplies every remaining score by
    `1 - IoU` where IoU > `iou_threshold` (linear) or by `exp(-IoU^2 / sigma)` (Gaussian), and
    drops boxes whose score is no longer above `score_threshold`. A pick's score never
    changes after it is taken, and later picks score no higher, so stopping after
    `max_detections` picks gives the same first picks.

    Returns:
        (indices (K,) int64 in decreasing new-score order, new scores (K,) float32).
    """
    order = _by_score(scores)
    order = order[np.asarray(scores)[order] > score_threshold]
    cols = _Columns(_offset_boxes(boxes, labels)[order])
    current = np.asarray(scores, np.float64)[order]
    limit = len(order) if max_detections is None else max_detections
    keep: list[int] = []
    kept_scores: list[float] = []
    while order.size and len(keep) < limit:
        pos = int(np.argmax(current))  # first of equal maxima: the earlier in score order
        keep.append(order[pos])
        kept_scores.append(current[pos])
        iou = cols.iou(pos, slice(None))
        if kind is SoftKind.LINEAR:
            current *= np.where(iou > iou_threshold, 1.0 - iou, 1.0)
        else:
            current *= np.exp(-(iou * iou) / sigma)
        alive = current > score_threshold
        alive[pos] = False
        order, current, cols = order[alive], current[alive], cols.take(alive)
    return np.asarray(keep, np.int64), np.asarray(kept_scores, np.float32)


def matrix_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    kind: SoftKind = SoftKind.GAUSSIAN,
    sigma: float = 2.0,
    score_threshold: float = 0.05,
    top_k: int = 1000,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Matrix NMS (SOLOv2, Wang et al., NeurIPS 2020), used by PP-YOLO as parallel Soft-NMS.

    On the `top_k` best boxes, each box j is decayed by its most-suppressing higher-scored
    box i, compensated by how much i was itself suppressed (the largest IoU of i with any box
    above it): decay_j = min_i f(IoU_ij) / f(max IoU_i), with f(x) = 1 - x (linear) or
    exp(-sigma x^2) (Gaussian). Only pairs of the same class count unless `labels` is None.
    One matrix operation, no sequential loop.

    Returns:
        (indices (K,) int64 of boxes whose new score is above `score_threshold`, in
        decreasing new-score order; new scores (K,) float32).
    """
    order = _by_score(scores)[:top_k]
    sorted_scores = np.asarray(scores, np.float64)[order]
    iou = np.triu(box_iou(np.asarray(boxes, np.float64)[order], np.asarray(boxes, np.float64)[order]), k=1)
    if labels is not None:
        sorted_labels = np.asarray(labels)[order]
        iou *= sorted_labels[:, None] == sorted_labels[None, :]
    compensate = iou.max(axis=0, initial=0.0)[:, None]  # row i: i's own largest IoU above it
    if kind is SoftKind.LINEAR:
        # A box identical to a higher one (compensate 1) would divide by zero: floor it.
        decay = (1.0 - iou) / np.maximum(1.0 - compensate, 1e-6)
    else:
        decay = np.exp(-sigma * (iou * iou - compensate * compensate))
    new_scores = sorted_scores * decay.min(axis=0, initial=np.inf)
    ranked = _by_score(new_scores)
    ranked = ranked[new_scores[ranked] > score_threshold]
    return order[ranked].astype(np.int64), new_scores[ranked].astype(np.float32)
