"""Classification metrics for long-tailed sets: top-1 / top-5, per-class and mean class
accuracy, head / medium / tail top-1, calibration (ECE) and the most-confused class pairs.

Written in numpy rather than taken from scikit-learn, which the deployment install does not
carry; the tests check every figure against scikit-learn.

- top-k (k = min(5, C)): the true class is among the k highest scores. Equal scores rank in
  class-index order, so top-1 is `argmax` (and `ClassProbs.index`); scikit-learn's
  `top_k_accuracy_score` ranks equal scores the other way (higher index first): the two
  differ only where the k-th place is tied.
- per-class accuracy: recall of each class; NaN for a class with no validation image, left
  out of the mean (as `balanced_accuracy_score` does). Mean class accuracy is that mean.
- head / medium / tail top-1 (with training counts): classes ranked by training images, most
  first (ties by class index), are split into thirds (`np.array_split`: with C not a multiple
  of 3 the head, then the medium third, take one more); each figure is the top-1 over the
  validation images of that third's classes. Thirds by rank, rather than the fixed
  >100 / 20-100 / <20 images of Liu et al. 2019 (OLTR), are populated whatever the set's size.
- ECE (Guo et al. 2017): confidences (top-1 probabilities) in 15 equal-width bins
  ((m-1)/15, m/15]; the sum over bins of |accuracy - mean confidence| weighted by the bin's
  share of images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from leanvision.core.classes import ranked, softmax
from leanvision.core.errors import DataError

TOP_K = 5
ECE_BINS = 15  # Guo et al. 2017
GROUPS = ("head", "medium", "tail")
_PROB_TOLERANCE = 1e-3  # a row of probabilities sums to 1 within this


@dataclass(frozen=True)
class ConfusedPair:
    """Validation images of class `true` predicted as `predicted`; `share` of `true`'s images."""

    true: int
    predicted: int
    count: int
    share: float


@dataclass(frozen=True)
class ClassificationMetrics:
    """Figures of one set of predictions (see the module docstring for each).

    Attributes:
        top1, topk: accuracies in [0, 1]; `k` is min(5, C).
        per_class_accuracy: (C,) recall per class, NaN where a class has no validation image.
        mean_class_accuracy: mean of the per-class accuracies that are not NaN.
        group_top1: head, medium, tail top-1 (NaN for a third without validation images);
            None without training counts.
        ece: expected calibration error in [0, 1].
        confused_pairs: most-confused (true, predicted) pairs, most images first.
        images: validation images scored.
        class_names: label index -> name, or None.
    """

    top1: float
    topk: float
    k: int
    per_class_accuracy: tuple[float, ...]
    mean_class_accuracy: float
    group_top1: tuple[float, float, float] | None
    ece: float
    confused_pairs: tuple[ConfusedPair, ...]
    images: int
    class_names: tuple[str, ...] | None = None

    def summary(self) -> dict[str, float]:
        """The headline figures by name: top1, top5, mean_class_accuracy, ece and, with
        training counts, head_top1, medium_top1, tail_top1 (NaN where a third is empty)."""
        figures = {"top1": self.top1, "top5": self.topk, "mean_class_accuracy": self.mean_class_accuracy,
                   "ece": self.ece}
        if self.group_top1 is not None:
            figures |= {f"{group}_top1": value for group, value in zip(GROUPS, self.group_top1, strict=True)}
        return figures

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: every figure, per-class accuracies and confused pairs; None for NaN."""
        name = self._name
        return {
            **{key: _json_float(value) for key, value in self.summary().items()},
            "k": self.k, "images": self.images,
            "per_class_accuracy": [{"index": i, "name": name(i), "accuracy": _json_float(a)}
                                   for i, a in enumerate(self.per_class_accuracy)],
            "confused_pairs": [{"true": p.true, "true_name": name(p.true), "predicted": p.predicted,
                          "predicted_name": name(p.predicted), "count": p.count, "share": p.share}
                         for p in self.confused_pairs],
        }

    def _name(self, index: int) -> str | None:
        return None if self.class_names is None else self.class_names[index]


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def classification_metrics(
    scores: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    logits: bool | None = None,
    train_counts: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    most_confused: int = 10,
) -> ClassificationMetrics:
    """Every figure of the module docstring for (N, C) scores against (N,) true labels.

    Args:
        scores: (N, C) probabilities or logits (softmaxed for ECE).
        logits: whether `scores` are logits; None: probabilities if every row is in [0, 1]
            and sums to 1 (within 1e-3), else logits.
        labels: (N,) true class indices in [0, C).
        train_counts: (C,) training images per class, for head / medium / tail top-1.
        class_names: label index -> name, carried into `to_dict`.
        most_confused: how many confused pairs to keep.

    Raises:
        DataError: no images, shapes that disagree, labels outside [0, C), scores that are
            not finite, or rows that are not probabilities with `logits=False`.
    """
    values, probs, truth = _checked(scores, labels, logits)
    num_classes = probs.shape[1]
    k = min(TOP_K, num_classes)
    top = ranked(values, k)  # logits rank as their softmax does, without its float rounding
    correct = top[:, 0] == truth
    confusion = np.bincount(truth * num_classes + top[:, 0], minlength=num_classes**2).reshape(num_classes, -1)
    per_class = _per_class_accuracy(confusion)
    return ClassificationMetrics(
        top1=float(correct.mean()),
        topk=float((top == truth[:, None]).any(axis=1).mean()),
        k=k,
        per_class_accuracy=tuple(per_class.tolist()),
        mean_class_accuracy=float(np.nanmean(per_class)),  # a class is present: truth is non-empty
        group_top1=None if train_counts is None else _group_top1(correct, truth, train_counts, num_classes),
        ece=expected_calibration_error(probs.max(axis=1), correct),
        confused_pairs=_most_confused(confusion, most_confused),
        images=len(truth),
        class_names=None if class_names is None else tuple(class_names),
    )


def _checked(
    scores: np.ndarray, labels: Sequence[int] | np.ndarray, logits: bool | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, probabilities, labels) as float64, float64, int64, or DataError."""
    values = np.asarray(scores, np.float64)
    truth = np.asarray(labels)
    if values.ndim != 2 or truth.ndim != 1 or len(values) != len(truth):
        raise DataError(f"need (N, C) scores and (N,) labels, got {list(values.shape)} and {list(truth.shape)}")
    if len(truth) == 0 or values.shape[1] == 0:
        raise DataError("no images to evaluate")
    if not np.isfinite(values).all():
        raise DataError("class scores must be finite (got NaN or inf)")
    if not np.issubdtype(truth.dtype, np.integer) or truth.min() < 0 or truth.max() >= values.shape[1]:
        raise DataError(f"labels must be class indices in [0, {values.shape[1]}), got {truth.min()}..{truth.max()}")
    probabilities = values.min() >= 0 and np.abs(values.sum(axis=1) - 1).max() <= _PROB_TOLERANCE
    if logits is False and not probabilities:
        raise DataError("class scores are not probabilities (rows in [0, 1] summing to 1) but logits=False")
    if logits or not probabilities:
        return values, softmax(values).astype(np.float64), truth.astype(np.int64)
    return values, values, truth.astype(np.int64)


def _per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    images = confusion.sum(axis=1)
    hits = np.diag(confusion).astype(np.float64)
    return np.divide(hits, images, out=np.full(len(images), np.nan), where=images > 0)


def class_groups(train_counts: Sequence[int], num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head, medium and tail class indices: thirds of the classes ranked by training
    images, most first, ties by class index (see the module docstring)."""
    counts = np.asarray(train_counts)
    if counts.shape != (num_classes,) or (counts < 0).any():
        raise DataError(f"need {num_classes} non-negative training counts (one per class), got shape "
                        f"{list(counts.shape)}")
    order = np.argsort(-counts, kind="stable")
    head, medium, tail = np.array_split(order, 3)
    return head, medium, tail


def _group_top1(correct: np.ndarray, truth: np.ndarray, train_counts: Sequence[int],
                num_classes: int) -> tuple[float, float, float]:
    figures = []
    for group in class_groups(train_counts, num_classes):
        inside = np.isin(truth, group)
        figures.append(float(correct[inside].mean()) if inside.any() else math.nan)
    return figures[0], figures[1], figures[2]


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of top-1 `confidence` (N,) in [0, 1] against `correct` (N,) bools: equal-width
    bins ((m-1)/bins, m/bins] (a confidence of 0 in the first), |accuracy - confidence| per
    bin weighted by its share of images (Guo et al. 2017, eq. 3)."""
    confidence = np.asarray(confidence, np.float64)
    upper_edges = np.linspace(0.0, 1.0, bins + 1)[1:]
    which = np.minimum(np.searchsorted(upper_edges, confidence, side="left"), bins - 1)
    images = np.bincount(which, minlength=bins)
    gap = np.bincount(which, weights=np.asarray(correct, np.float64), minlength=bins)
    gap -= np.bincount(which, weights=confidence, minlength=bins)
    return float(np.abs(gap).sum() / max(1, images.sum()))


def _most_confused(confusion: np.ndarray, most: int) -> tuple[ConfusedPair, ...]:
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    true, predicted = np.nonzero(off)
    counts = off[true, predicted]
    order = np.lexsort((predicted, true, -counts))[:most]  # most images first, then by index
    images = confusion.sum(axis=1)
    return tuple(ConfusedPair(int(t), int(p), int(c), float(c / images[t]))
                 for t, p, c in zip(true[order], predicted[order], counts[order], strict=True))


@dataclass(frozen=True)
class ClassificationScorer:
    """Scores `ClassProbs` predictions against fixed true labels: `scorer(predictions) ->
    summary` (`ClassificationMetrics.summary`: top1, top5, mean_class_accuracy, ece, and
    head / medium / tail top1 with `train_counts`). Classes rank by the predictions'
    logits, so top-1 is each prediction's `ClassProbs.index`.

    A picklable callable, so benchmarks can score in the processes they isolate engines in.
    """

    truth: tuple[int, ...]
    class_names: tuple[str, ...]
    train_counts: tuple[int, ...] | None = None

    def __call__(self, predictions: Sequence[Any]) -> dict[str, float]:
        if len(predictions) != len(self.truth):
            raise DataError(f"{len(predictions)} predictions for {len(self.truth)} labelled images")
        if not predictions:
            raise DataError("no images to evaluate")
        logits = [np.asarray(p.logits) for p in predictions]
        wrong = next((x.shape for x in logits if x.shape != (len(self.class_names),)), None)
        if wrong is not None:
            raise DataError(f"a prediction has {list(wrong)} class scores, the set {len(self.class_names)} classes")
        return classification_metrics(np.stack(logits), np.asarray(self.truth, np.int64), logits=True,
                                      train_counts=self.train_counts, class_names=self.class_names).summary()
