"""Validation sets for benchmarks: the images of a labelled dataset and a picklable scorer."""

from __future__ import annotations

from pathlib import Path

from leanvision.core import ModelCard
from leanvision.data.labelled import load_labelled_set
from leanvision.evaluation.benchmark import ValSet


def val_set(data: Path, card: ModelCard) -> ValSet:
    """The validation images and their scorer for the card's task (`data.labelled`)."""
    labelled = load_labelled_set(data, card)
    return ValSet(labelled.files, labelled.scorer(), labelled.metric, labelled.higher_is_better)
