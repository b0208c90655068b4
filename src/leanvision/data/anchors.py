"""`data anchors`: do a detector's anchors fit the data's boxes, and which anchors would.

An anchor-based detector learns a box only from the anchors its matcher assigns to it: with
RetinaNet's matcher an anchor is a positive at IoU >= 0.5 (`fg_iou_threshold`); a box no
anchor reaches gets only its single best anchor (low-quality match), a weak signal that
small classes lose to the rest. Boxes far smaller than the smallest anchor (S0's 0.5 scale
makes a 25 px platelet 12 px, against torchvision's 32 px P3 anchors: IoU 0.15) are where a
class collapses. This module measures, per class, the share of boxes (at the size training
sees them) that some anchor shape covers at IoU >= the threshold, and fits better anchors:

- aspect ratios: k-means (k = anchors per level's ratios) on log(h / w) of the boxes (the
  model's ratios where the boxes have one shape, which k-means cannot split);
- sizes: the model's sizes (torchvision's: 3 octave scales on 32 ... 512 px) times one
  factor, the one (on a 2^(1/12) grid from 1/8 to 2) that covers the most boxes, ties going
  to the factor nearest 1.

IoU is that of shapes sharing a centre (YOLOv5's autoanchor makes the same simplification):
an upper bound, since a box centre lies up to half a stride from the nearest anchor centre.
Written here because the detection libraries fit YOLO-style anchors (9 free shapes), while
a RetinaNet's anchors are tied to its levels and octave scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from leanvision.core import ResizeMode
from leanvision.core.letterbox import fit
from leanvision.data.formats import DetectionSet

FACTORS = tuple(2 ** (k / 12) for k in range(-36, 13))
SEARCH_BOXES = 20000


@dataclass(frozen=True)
class AnchorFit:
    """What `fit_anchors` found.

    Attributes:
        sizes: per level P3..P7, the fitted anchor sizes in input pixels.
        ratios: the fitted aspect ratios (h / w), the same on every level.
        factor: the fitted sizes over torchvision's.
        boxes: boxes measured.
        coverage_before, coverage_after: share of boxes some anchor shape reaches at IoU >=
            `threshold`, with the anchors given and with the fitted ones.
        per_class: class name -> {"boxes", "median_px", "before", "after"}.
        threshold: the IoU a positive needs (the matcher's foreground threshold).
    """

    sizes: tuple[tuple[float, ...], ...]
    ratios: tuple[float, ...]
    factor: float
    boxes: int
    coverage_before: float
    coverage_after: float
    per_class: dict[str, dict[str, float]]
    threshold: float

    def overrides(self) -> dict[str, list]:
        """The model overrides (`model.overrides` of a recipe) that set these anchors."""
        return {"anchor_sizes": [list(s) for s in self.sizes], "aspect_ratios": [list(self.ratios) for _ in self.sizes]}

    def to_dict(self) -> dict:
        return {"sizes": [list(s) for s in self.sizes], "ratios": list(self.ratios), "factor": self.factor,
                "boxes": self.boxes, "coverage_before": self.coverage_before, "coverage_after": self.coverage_after,
                "per_class": self.per_class, "threshold": self.threshold, "overrides": self.overrides()}


def box_shapes(dataset: DetectionSet, *, input_hw: tuple[int, int] | None = None,
               resize: ResizeMode = ResizeMode.SCALE, scale: float | None = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Every box's (width, height) as training sees it, and its label.

    With resize "scale" the boxes are scaled by `scale` (training crops windows at that
    scale); with "stretch" or "letterbox" each image is fitted to `input_hw` as the card does.
    """
    shapes, labels = [], []
    for record in dataset.images:
        targets = record.targets
        if not len(targets):
            continue
        wh = targets.boxes[:, 2:] - targets.boxes[:, :2]
        if resize is ResizeMode.SCALE or input_hw is None:
            wh = wh * (1.0 if scale is None else scale)
        else:
            transform = fit((record.height, record.width), input_hw, resize)
            wh = wh * np.array([transform.scale_x, transform.scale_y], np.float32)
        shapes.append(wh)
        labels.append(targets.labels)
    if not shapes:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.int64)
    return np.concatenate(shapes).astype(np.float64), np.concatenate(labels).astype(np.int64)


def anchor_shapes(sizes: Sequence[Sequence[float]], ratios: Sequence[float]) -> np.ndarray:
    """(A, 2) anchor (width, height) of every level, size and ratio, as torchvision's
    `AnchorGenerator` makes them: h = size * sqrt(ratio), w = size / sqrt(ratio), the corners
    (+-w/2, +-h/2) rounded to whole pixels (round half to even, as `torch.round`)."""
    root = np.sqrt(np.asarray(ratios, np.float64))
    shapes = np.array([(s / r, s * r) for level in sizes for s in level for r in root])
    return 2.0 * np.round(shapes / 2.0)


def shape_iou(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(N, A) IoU of (w, h) shapes placed on one centre."""
    inter = np.minimum(boxes[:, None, 0], anchors[None, :, 0]) * np.minimum(boxes[:, None, 1], anchors[None, :, 1])
    union = boxes[:, 0:1] * boxes[:, 1:2] + (anchors[:, 0] * anchors[:, 1])[None, :] - inter
    return inter / np.maximum(union, 1e-12)


def covered(boxes: np.ndarray, anchors: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) bool: some anchor shape reaches IoU >= `threshold` with the box."""
    if not len(boxes):
        return np.zeros(0, bool)
    return shape_iou(boxes, anchors).max(axis=1) >= threshold


def fit_ratios(boxes: np.ndarray, k: int = 3, *, iterations: int = 50) -> tuple[float, ...]:
    """k aspect ratios (h / w): 1-D k-means on log(h / w), started at its quantiles."""
    logs = np.log(boxes[:, 1] / boxes[:, 0])
    centres = np.quantile(logs, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        nearest = np.abs(logs[:, None] - centres[None, :]).argmin(axis=1)
        updated = np.array([logs[nearest == j].mean() if np.any(nearest == j) else centres[j] for j in range(k)])
        if np.allclose(updated, centres):
            break
        centres = updated
    return tuple(round(float(r), 2) for r in np.sort(np.exp(centres)))


def fit_anchors(boxes: np.ndarray, labels: np.ndarray, class_names: Sequence[str], *,
                sizes: Sequence[Sequence[float]], ratios: Sequence[float], threshold: float = 0.5) -> AnchorFit:
    """Fit anchor ratios and one size factor to `boxes` ((N, 2) width, height in input pixels),
    starting from a model's anchors (`sizes` per level, `ratios` shared by the levels).

    Raises:
        ValueError: no box, or a box without area.
    """
    if not len(boxes):
        raise ValueError("no boxes to fit anchors to")
    if (boxes <= 0).any():
        raise ValueError("every box needs a positive width and height")
    fitted_ratios = fit_ratios(boxes, k=len(ratios))
    if len(set(fitted_ratios)) < len(fitted_ratios):  # one shape (all square): k-means has nothing to split
        fitted_ratios = tuple(float(r) for r in ratios)
    # The factor search sees at most SEARCH_BOXES boxes (a fixed random subset): its cost is
    # boxes x anchors x factors.
    search = boxes if len(boxes) <= SEARCH_BOXES else boxes[np.random.default_rng(0).choice(
        len(boxes), SEARCH_BOXES, replace=False)]
    best = max(FACTORS, key=lambda f: (covered(search, anchor_shapes(_scaled(sizes, f), fitted_ratios),
                                               threshold).mean(), -abs(np.log(f))))
    fitted_sizes = _scaled(sizes, best)
    before = covered(boxes, anchor_shapes(sizes, ratios), threshold)
    after = covered(boxes, anchor_shapes(fitted_sizes, fitted_ratios), threshold)
    per_class = {}
    for label, name in enumerate(class_names):
        mask = labels == label
        if mask.any():
            side = np.sqrt(boxes[mask, 0] * boxes[mask, 1])
            per_class[name] = {"boxes": int(mask.sum()), "median_px": round(float(np.median(side)), 1),
                               "before": round(float(before[mask].mean()), 4), "after": round(float(after[mask].mean()), 4)}
    return AnchorFit(fitted_sizes, fitted_ratios, round(best, 4), len(boxes), round(float(before.mean()), 4),
                     round(float(after.mean()), 4), per_class, threshold)


def _scaled(sizes: Sequence[Sequence[float]], factor: float) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(round(s * factor, 1) for s in level) for level in sizes)
