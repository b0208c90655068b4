"""Validation sets for benchmarks: the images of a labelled dataset and a picklable scorer."""

from __future__ import annotations

from pathlib import Path

from leanvision.core import ConfigError, DataError, ModelCard, Task
from leanvision.evaluation.benchmark import ValSet


def val_set(data: Path, card: ModelCard) -> ValSet:
    """The validation images and their scorer for the card's task."""
    from leanvision.data.formats import CountingSet, read_dataset, read_detection

    if card.task is Task.DETECT:
        from leanvision.evaluation.detection import DetectionScorer

        dataset = read_detection(data)
        if not dataset.images:
            raise DataError("the validation set has no images", path=data)
        if tuple(dataset.classes) != tuple(card.class_names):
            raise DataError(f"validation classes {list(dataset.classes)} differ from the model's {list(card.class_names)}", path=data)
        scorer = DetectionScorer(tuple(r.targets for r in dataset.images),
                                 tuple((r.width, r.height) for r in dataset.images), tuple(card.class_names))
        return ValSet(tuple(dataset.image_path(r) for r in dataset.images), scorer, "map50", True)
    if card.task is Task.COUNT:
        from leanvision.evaluation.counting import CountingScorer

        dataset = read_dataset(data)
        if not isinstance(dataset, CountingSet) or not dataset.images:
            raise DataError("expected a counting set (images + points) with images", path=data)
        scorer = CountingScorer(tuple(float(len(r.points)) for r in dataset.images))
        return ValSet(tuple(dataset.image_root / r.file_name for r in dataset.images), scorer, "mae", False)
    raise ConfigError(f"bench has no metric for task '{card.task}' yet")
