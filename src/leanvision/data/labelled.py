"""A labelled set of a model's task, read one way for `val`, `bench` and `quantize`.

    labelled = load_labelled_set(path, card)     # the card's task picks the reader
    labelled.files, labelled.truth               # image files and their ground truth
    scorer = labelled.scorer()                   # predictions in file order -> metrics

The readers (one per task, named in `data.tasks.TORCH_TASKS`) refuse what cannot be scored
with a one-line DataError naming the path: no labels of the task, no image, classes differing
from the model's, nothing to score. Problems that only drop an item (a label for a missing
image, points outside their image) come back as `issues`, for the caller to report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from leanvision.core import DataError, ModelCard
from leanvision.data.formats import Issue, drop_outside_points, read_counting, read_detection
from leanvision.data.tasks import torch_task

Scorer = Callable[[Sequence[Any]], Mapping[str, float]]


@dataclass(frozen=True)
class LabelledSet:
    """A labelled set ready to score predictions.

    Attributes:
        path: the dataset.
        files: image files, in the set's order.
        truth: per image, its ground truth (detection: the `ImageRecord`, targets with their
            crowd / difficult flags; counting: the number of points).
        sizes: per image, (width, height) from the labels; (0, 0) where the labels lack it.
        issues: what was left out or dropped while reading.
        dataset: the reader's in-memory set (`DetectionSet`, `CountingSet`), for torch evaluation.
        metric: the headline figure the scorer returns ("map50", "mae").
        higher_is_better: whether a larger `metric` is better.
        objects: labelled objects (boxes, points).
        make_scorer: `(truth, sizes) -> scorer`, for the set or a subset of it (the images
            that decode); a scorer is picklable.
    """

    path: Path
    files: tuple[Path, ...]
    truth: tuple[Any, ...]
    sizes: tuple[tuple[int, int], ...]
    issues: tuple[Issue, ...]
    dataset: Any
    metric: str
    higher_is_better: bool
    objects: int
    make_scorer: Callable[[Sequence[Any], Sequence[tuple[int, int]]], Scorer]

    def scorer(self) -> Scorer:
        """The scorer of the whole set: predictions in `files` order -> metrics by name."""
        return self.make_scorer(self.truth, self.sizes)


def load_labelled_set(path: str | Path, card: ModelCard) -> LabelledSet:
    """The labelled set at `path` for the card's model: its task's reader, its class names.

    Raises:
        DataError: see the module docstring.
        ConfigError: the card's task has no labelled-set reader.
    """
    reader = torch_task(card.task, doing="scored").load("labelled_set")
    return reader(Path(path), tuple(card.class_names))


def _make_detection_scorer(truth: Sequence[Any], sizes: Sequence[tuple[int, int]], *,
                           class_names: tuple[str, ...]) -> Scorer:
    from leanvision.evaluation.detection import DetectionScorer

    return DetectionScorer(tuple(r.targets for r in truth), tuple(sizes), class_names,
                           crowd=tuple(r.crowd for r in truth), difficult=tuple(r.difficult for r in truth))


def _make_counting_scorer(truth: Sequence[Any], sizes: Sequence[tuple[int, int]]) -> Scorer:
    from leanvision.evaluation.counting import CountingScorer

    return CountingScorer(tuple(float(t) for t in truth))


def _make_classification_scorer(truth: Sequence[Any], sizes: Sequence[tuple[int, int]], *,
                                class_names: tuple[str, ...]) -> Scorer:
    from leanvision.evaluation.classification import ClassificationScorer

    return ClassificationScorer(tuple(int(t) for t in truth), class_names)


def read_classification_set(path: Path, class_names: Sequence[str] | None = None) -> LabelledSet:
    """An ImageFolder or labels.csv set scored by top-1; its classes are mapped onto the
    model's by name (a class the model does not have is a DataError)."""
    from leanvision.core import Task
    from leanvision.data.formats import ClassificationSet, read_of_task
    from leanvision.data.formats.classification import onto_classes

    try:
        dataset = read_of_task(path, Task.CLASSIFY)
    except DataError as exc:
        raise DataError(f"the validation set needs class labels (class folders or labels.csv): {exc.message}",
                        path=path) from None
    assert isinstance(dataset, ClassificationSet)
    if class_names is not None:
        dataset = onto_classes(dataset, class_names, path=path)
    if not dataset.items:
        raise DataError("the classification set has no images", path=path)
    truth = tuple(label for _, label in dataset.items)
    return LabelledSet(path, tuple(dataset.image_files()), truth, ((0, 0),) * len(truth), tuple(dataset.issues),
                       dataset, "top1", True, len(truth),
                       partial(_make_classification_scorer, class_names=tuple(dataset.classes)))


def read_detection_set(path: Path, class_names: Sequence[str] | None = None) -> LabelledSet:
    """A COCO, VOC or YOLO set scored by COCO mAP; `class_names` (the model's) must match its classes."""
    try:
        dataset = read_detection(path)
    except DataError as exc:
        raise DataError(f"the validation set needs labels (a COCO, VOC or YOLO detection set): {exc.message}",
                        path=path) from None
    dataset, partly_read = dataset.without_partly_read()
    if not dataset.images:
        raise DataError("the validation set has no images", path=path)
    if class_names is not None and tuple(dataset.classes) != tuple(class_names):
        raise DataError(f"validation classes {list(dataset.classes)} differ from the model's {list(class_names)}",
                        path=path)
    if dataset.num_objects == 0:
        raise DataError("the validation set has no labelled box: mAP@0.5 needs ground truth", path=path)
    records = dataset.images
    return LabelledSet(path, tuple(dataset.image_path(r) for r in records), tuple(records),
                       tuple((r.width, r.height) for r in records), (*dataset.issues, *partly_read), dataset, "map50", True,
                       dataset.num_objects, partial(_make_detection_scorer, class_names=tuple(dataset.classes)))


def read_counting_set(path: Path, class_names: Sequence[str] | None = None) -> LabelledSet:
    """A points JSON / CSV or ShanghaiTech set scored by MAE; points outside their image are dropped."""
    try:
        dataset = read_counting(path)
    except DataError as exc:
        raise DataError(f"the validation set needs point labels (points.json, points.csv or ShanghaiTech): "
                        f"{exc.message}", path=path) from None
    if not dataset.images:
        raise DataError("the counting set has no images", path=path)
    dataset, outside = drop_outside_points(dataset)
    records = dataset.images
    truth = tuple(float(len(r.points)) for r in records)
    return LabelledSet(path, tuple(dataset.image_files()), truth, tuple((r.width, r.height) for r in records),
                       (*dataset.issues, *outside), dataset, "mae", False, round(sum(truth)), _make_counting_scorer)
