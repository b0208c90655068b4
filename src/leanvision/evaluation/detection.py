"""Detection accuracy: COCO mAP through pycocotools, built from `Detections` in memory.

The COCO protocol (greedy matching by score, 10 IoU thresholds, 101-point interpolated
precision, maxDets 100) is pycocotools' own; this module only converts `Detections` into the
COCO dictionaries it reads and the evaluation arrays it writes into `DetectionMetrics`.

Negative images (no ground truth) are listed as COCO images, so detections on them are false
positives that lower precision, as in S0's scoring where most windows hold no abnormal cell.

Ground-truth boxes may be flagged. A crowd box (COCO `iscrowd`) is pycocotools' own case:
detections matching it (IoU over the detection's area) are ignored, neither true nor false
positives. A difficult box (VOC `difficult`) is ignored as the VOC devkit does: it is not
a positive to find, and a detection matching it (ordinary IoU) is not a false positive.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from leanvision.core import DataError, Detections
from leanvision.core.boxes import xyxy_to_xywh
from leanvision.core.io import atomic_path

# COCOeval.stats indices for area "all": AP@[.5:.95], AP@.5, AP@.75, ..., AR@100 is 8.
_STAT_MAP, _STAT_MAP50, _STAT_MAP75, _STAT_AR100 = 0, 1, 2, 8


@dataclass(frozen=True, eq=False)
class DetectionMetrics:
    """COCO box metrics of one evaluation (area "all", up to 100 detections per image).

    Attributes:
        map: mAP@[.5:.95] over the classes that have ground truth, in [0, 1].
        map50, map75: mAP at IoU 0.5 and 0.75.
        ar100: average recall with at most 100 detections per image.
        class_names: label index -> name.
        ap50_per_class, ap_per_class: AP@0.5 and AP@[.5:.95] per class name; NaN for a class
            with no ground truth (undefined).
        precision: (T, R, K) float64 interpolated precision at IoU threshold t, recall
            threshold r and class k; -1 where undefined (pycocotools' convention).
        recall: (T, K) float64 maximum recall reached at each IoU threshold; -1 if undefined.
        iou_thresholds: (T,) 0.5 ... 0.95.
        recall_thresholds: (R,) 0.0 ... 1.0 (101 points).
        num_images, num_negative_images, num_ground_truth, num_predictions: counts.
    """

    map: float
    map50: float
    map75: float
    ar100: float
    class_names: tuple[str, ...]
    ap50_per_class: dict[str, float]
    ap_per_class: dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    num_images: int = 0
    num_negative_images: int = 0
    num_ground_truth: int = 0
    num_predictions: int = 0

    def summary(self) -> dict[str, float]:
        """Headline figures as a flat dict: map, map50, map75, ar100."""
        return {"map": self.map, "map50": self.map50, "map75": self.map75, "ar100": self.ar100}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: headline figures, per-class AP, counts and the PR arrays as lists."""
        return {
            **self.summary(),
            "ap50_per_class": {k: _json_float(v) for k, v in self.ap50_per_class.items()},
            "ap_per_class": {k: _json_float(v) for k, v in self.ap_per_class.items()},
            "num_images": self.num_images,
            "num_negative_images": self.num_negative_images,
            "num_ground_truth": self.num_ground_truth,
            "num_predictions": self.num_predictions,
            "class_names": list(self.class_names),
            "iou_thresholds": self.iou_thresholds.round(2).tolist(),
            "recall_thresholds": self.recall_thresholds.round(2).tolist(),
            "precision": self.precision.round(6).tolist(),
            "recall": self.recall.round(6).tolist(),
        }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


def _coco_images(image_sizes: Sequence[tuple[int, int]]) -> list[dict[str, int]]:
    return [{"id": i + 1, "width": int(w), "height": int(h)} for i, (w, h) in enumerate(image_sizes)]


def _flags(flags: Sequence[np.ndarray] | None, per_image: Sequence[Detections], name: str) -> list[np.ndarray]:
    """Per image, one bool per box (all False when `flags` is None)."""
    if flags is None:
        return [np.zeros(len(d), bool) for d in per_image]
    if len(flags) != len(per_image):
        raise ValueError(f"{name}: one entry per image is needed, got {len(flags)} for {len(per_image)} images")
    out = [np.asarray(f, bool).reshape(-1) for f in flags]
    for f, dets in zip(out, per_image, strict=True):
        if len(f) != len(dets):
            raise ValueError(f"{name}: one flag per ground-truth box is needed, got {len(f)} for {len(dets)}")
    return out


def _coco_boxes(per_image: Sequence[Detections], *, with_scores: bool, crowd: Sequence[np.ndarray] | None = None,
                difficult: Sequence[np.ndarray] | None = None) -> list[dict[str, Any]]:
    """COCO annotation dicts (xywh boxes, category id = label + 1, image id = index + 1)."""
    crowd, difficult = _flags(crowd, per_image, "crowd"), _flags(difficult, per_image, "difficult")
    annotations = []
    for index, dets in enumerate(per_image):
        xywh = xyxy_to_xywh(dets.boxes)
        flags = zip(crowd[index].tolist(), difficult[index].tolist(), strict=True)
        for box, score, label, (is_crowd, is_difficult) in zip(xywh.tolist(), dets.scores.tolist(),
                                                                dets.labels.tolist(), flags, strict=True):
            record = {
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": int(label) + 1,
                "bbox": box, "area": box[2] * box[3], "iscrowd": int(is_crowd), "difficult": int(is_difficult),
            }
            if with_scores:
                record["score"] = float(score)
            annotations.append(record)
    return annotations


def _coco(images: list[dict], annotations: list[dict], class_names: Sequence[str]):
    """A pycocotools COCO object built in memory (no JSON file round trip)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(class_names)],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        coco.createIndex()
    return coco


def _check_inputs(
    ground_truth: Sequence[Detections],
    predictions: Sequence[Detections],
    image_sizes: Sequence[tuple[int, int]],
    class_names: Sequence[str],
) -> None:
    if not len(ground_truth) == len(predictions) == len(image_sizes):
        raise ValueError(
            f"one entry per image is needed: {len(ground_truth)} ground truths, "
            f"{len(predictions)} predictions, {len(image_sizes)} image sizes"
        )
    if sum(len(g) for g in ground_truth) == 0:
        raise DataError("no ground-truth boxes in the evaluation set: mAP is undefined")
    for dets in (*ground_truth, *predictions):
        if len(dets) and (dets.labels.min() < 0 or dets.labels.max() >= len(class_names)):
            raise ValueError(f"labels must lie in [0, {len(class_names)}), got {np.unique(dets.labels).tolist()}")


def _cocoeval_class():
    from pycocotools.cocoeval import COCOeval

    class _COCOevalDifficult(COCOeval):
        """COCOeval that also ignores difficult ground truth (pycocotools' `_prepare` sets
        `ignore` from `iscrowd` alone, overwriting any other flag)."""

        def _prepare(self) -> None:
            super()._prepare()
            for gts in self._gts.values():
                for gt in gts:
                    gt["ignore"] = bool(gt["ignore"]) or bool(gt.get("difficult", 0))

    return _COCOevalDifficult


def _run_cocoeval(gt, dt):
    evaluator = _cocoeval_class()(gt, dt, iouType="bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _per_class_ap(precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP@0.5 and AP@[.5:.95] per class from (T, R, K) precision; NaN where undefined."""
    defined = precision > -1
    with np.errstate(invalid="ignore"):
        ap50 = np.where(defined[0].all(axis=0), precision[0].mean(axis=0), np.nan)
        ap = np.where(defined.all(axis=(0, 1)), precision.mean(axis=(0, 1)), np.nan)
    return ap50, ap


def evaluate_detections(
    ground_truth: Sequence[Detections],
    predictions: Sequence[Detections],
    *,
    image_sizes: Sequence[tuple[int, int]],
    class_names: Sequence[str],
    crowd: Sequence[np.ndarray] | None = None,
    difficult: Sequence[np.ndarray] | None = None,
) -> DetectionMetrics:
    """COCO box mAP of `predictions` against `ground_truth`, one entry per image.

    Args:
        ground_truth: per image, boxes (N, 4) xyxy pixels with labels; empty for a negative
            image (which still counts: detections on it are false positives).
        predictions: per image, scored boxes in the same pixel frame as the ground truth.
        image_sizes: per image, (width, height) in pixels.
        class_names: label index -> name.
        crowd: per image, (N,) bool: the ground-truth box is a COCO crowd region. None: none is.
        difficult: per image, (N,) bool: the ground-truth box is VOC difficult. None: none is.

    Raises:
        DataError: no image has a ground-truth box (mAP is undefined).
        ValueError: the sequences differ in length or a label is out of range.
    """
    _check_inputs(ground_truth, predictions, image_sizes, class_names)
    images = _coco_images(image_sizes)
    gt = _coco(images, _coco_boxes(ground_truth, with_scores=False, crowd=crowd, difficult=difficult), class_names)
    dt = _coco(images, _coco_boxes(predictions, with_scores=True), class_names)
    evaluator = _run_cocoeval(gt, dt)
    # eval["precision"]: (T, R, K, A, M); area index 0 = "all", maxDets index -1 = 100.
    precision = np.asarray(evaluator.eval["precision"][:, :, :, 0, -1], np.float64)
    recall = np.asarray(evaluator.eval["recall"][:, :, 0, -1], np.float64)
    ap50, ap = _per_class_ap(precision)
    stats = evaluator.stats
    return DetectionMetrics(
        map=max(float(stats[_STAT_MAP]), 0.0),
        map50=max(float(stats[_STAT_MAP50]), 0.0),
        map75=max(float(stats[_STAT_MAP75]), 0.0),
        ar100=max(float(stats[_STAT_AR100]), 0.0),
        class_names=tuple(class_names),
        ap50_per_class={name: float(v) for name, v in zip(class_names, ap50, strict=True)},
        ap_per_class={name: float(v) for name, v in zip(class_names, ap, strict=True)},
        precision=precision,
        recall=recall,
        iou_thresholds=np.asarray(evaluator.params.iouThrs, np.float64),
        recall_thresholds=np.asarray(evaluator.params.recThrs, np.float64),
        num_images=len(ground_truth),
        num_negative_images=sum(1 for g in ground_truth if len(g) == 0),
        num_ground_truth=sum(len(g) for g in ground_truth),
        num_predictions=sum(len(p) for p in predictions),
    )


def plot_pr_curve(metrics: DetectionMetrics, path: str | os.PathLike[str], *, title: str = "") -> None:
    """Write the precision-recall curve at IoU 0.5, one line per class, as an image.

    Args:
        metrics: an evaluation result.
        path: output file; the format follows its suffix (.png, .svg, .pdf). Written atomically.
        title: optional figure title.
    """
    from matplotlib.figure import Figure  # object API: no pyplot global state, no GUI backend

    figure = Figure(figsize=(5.5, 4.5), dpi=120)
    axes = figure.add_subplot()
    recall = metrics.recall_thresholds
    for k, name in enumerate(metrics.class_names):
        curve = metrics.precision[0, :, k]
        if (curve > -1).all():
            axes.plot(recall, curve, label=f"{name} AP@0.5 {metrics.ap50_per_class[name]:.3f}")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
             title=title or f"PR @ IoU 0.5 - mAP@0.5 {metrics.map50:.3f}, mAP {metrics.map:.3f}")
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend(loc="lower left", fontsize="small")
    with atomic_path(path) as tmp:
        figure.savefig(tmp)


@dataclass(frozen=True)
class DetectionScorer:
    """Scores predictions against fixed ground truth: `scorer(predictions) -> summary`.

    A picklable callable, so benchmarks can score in the processes they isolate engines in.
    """

    ground_truth: tuple[Detections, ...]
    image_sizes: tuple[tuple[int, int], ...]
    class_names: tuple[str, ...]
    crowd: tuple[np.ndarray, ...] | None = None  # per image, see `evaluate_detections`
    difficult: tuple[np.ndarray, ...] | None = None

    def __call__(self, predictions: Sequence[Detections]) -> dict[str, float]:
        metrics = evaluate_detections(self.ground_truth, predictions, image_sizes=self.image_sizes,
                                      class_names=self.class_names, crowd=self.crowd, difficult=self.difficult)
        return metrics.summary()
