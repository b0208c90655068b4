"""Run a torch model over a dataset (the loop every task shares, `predict_records`), and a
detection model's predictions scored with COCO mAP.

Each image is fitted to the model card's input (stretch or letterbox, `core.letterbox`),
normalised with the card's mean/std, passed through `model.detect`, and its boxes mapped
back to the image's own pixels, so the metrics are those of the original images. An image
that cannot be decoded is skipped with a warning and counted; it is not scored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leanvision.core import DataError, Detections, InputSpec
from leanvision.core.letterbox import FitTransform
from leanvision.data.augment.common import read_rgb
from leanvision.data.formats import DetectionSet, ImageRecord, Issue
from leanvision.evaluation.detection import DetectionMetrics, evaluate_detections
from leanvision.runtime.preprocess import fit_to_input
from leanvision.training.loop import normalize

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class DatasetPredictions:
    """Detections per scored image, in the image's pixels.

    Attributes:
        records: the images that were scored, in dataset order.
        detections: one `Detections` per record.
        sizes: (width, height) of each record's decoded image, in pixels.
        skipped: images left out (undecodable), with the reason.
    """

    records: list[ImageRecord] = field(default_factory=list)
    detections: list[Detections] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    skipped: list[Issue] = field(default_factory=list)


def fit_image(rgb: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, FitTransform]:
    """Place an HxWx3 uint8 image in the card's (height, width) input as deployment does
    (`runtime.preprocess.fit_to_input`: the card's resize mode, padding grey)."""
    return fit_to_input(rgb, (spec.height, spec.width), spec.resize, scale=spec.scale, pad_value=spec.pad_value)


@dataclass(frozen=True)
class Predicted:
    """One image's model output, with what maps it back to the image.

    Attributes:
        record: the dataset record of the image.
        size: (width, height) of the decoded image.
        transform: how the image was fitted to the model input (`core.letterbox`).
        output: the model's result for it, in model-input pixels.
    """

    record: Any
    size: tuple[int, int]
    transform: FitTransform
    output: Any


def predict_records(
    records: Sequence[Any],
    path_of: Callable[[Any], Path],
    spec: InputSpec,
    infer: Callable[..., Sequence[Any]],
    *,
    batch_size: int = 4,
    progress: Progress | None = None,
    skipped: list[Issue],
    with_transforms: bool = False,
) -> Iterator[Predicted]:
    """The one prediction loop of every task: decode each record's image (an undecodable one
    is warned about, appended to `skipped` and left out), fit it to the card's input as
    deployment does, normalise, and call `infer` (e.g. `model.detect`) on batches of
    `batch_size` under `torch.no_grad()`; yield each image's output in record order.
    With `with_transforms`, `infer` is called as `infer(batch, transforms)` (how each image
    sits in the input, e.g. for a mirror of the image region only)."""
    mean, std = torch.tensor(spec.mean), torch.tensor(spec.std)
    done = 0
    for batch in _batches(_loaded(records, path_of, skipped), max(1, batch_size)):
        fitted = [fit_image(rgb, spec) for _, rgb in batch]
        tensor = torch.from_numpy(np.stack([image for image, _ in fitted])).permute(0, 3, 1, 2)
        with torch.no_grad():
            normalized = normalize(tensor, mean, std)
            outputs = infer(normalized, [t for _, t in fitted]) if with_transforms else infer(normalized)
        for (record, rgb), (_, transform), output in zip(batch, fitted, outputs, strict=True):
            yield Predicted(record, (rgb.shape[1], rgb.shape[0]), transform, output)
        done += len(batch)
        if progress is not None:
            progress(done + len(skipped), len(records))


def _loaded(records: Sequence[Any], path_of: Callable[[Any], Path],
            skipped: list[Issue]) -> Iterator[tuple[Any, np.ndarray]]:
    for record in records:
        path = path_of(record)
        try:
            yield record, read_rgb(path)
        except DataError as exc:
            logger.warning("skipping %s", exc)
            skipped.append(Issue(str(path), exc.message))


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_dataset(
    model: nn.Module,
    dataset: DetectionSet,
    spec: InputSpec,
    *,
    batch_size: int = 4,
    progress: Progress | None = None,
) -> DatasetPredictions:
    """`model.detect` over every image of `dataset` at the card's input size.

    Args:
        model: a detection model (put in eval mode by the caller).
        dataset: the images (and, unused here, their labels).
        spec: the model card's input spec (size, resize mode, mean/std).
        batch_size: images per `detect` call.
        progress: called as `progress(done, total)` after each batch.

    Returns:
        Per decodable image, detections in that image's pixels, clipped to it.
    """
    result = DatasetPredictions()
    for item in predict_records(dataset.images, dataset.image_path, spec, model.detect, batch_size=batch_size,
                                progress=progress, skipped=result.skipped):
        width, height = item.size
        dets = item.output
        result.records.append(item.record)
        result.sizes.append(item.size)
        result.detections.append(Detections(item.transform.invert_boxes(dets.boxes), dets.scores,
                                            dets.labels).clip(width, height))
    return result


def score_predictions(
    predictions: DatasetPredictions, dataset: DetectionSet, class_names: Sequence[str]
) -> DetectionMetrics:
    """COCO mAP of `predictions` against the labels of the scored images."""
    if not predictions.records:
        raise DataError("no image of the evaluation set could be read", path=dataset.image_root)
    ground_truth = [record.targets for record in predictions.records]
    return evaluate_detections(ground_truth, predictions.detections, image_sizes=predictions.sizes,
                               class_names=class_names, crowd=[r.crowd for r in predictions.records],
                               difficult=[r.difficult for r in predictions.records])


def evaluate_model(
    model: nn.Module,
    dataset: DetectionSet,
    spec: InputSpec,
    *,
    class_names: Sequence[str],
    batch_size: int = 4,
    progress: Progress | None = None,
) -> tuple[DetectionMetrics, DatasetPredictions]:
    """Predict over `dataset` and score the result (see `predict_dataset`)."""
    predictions = predict_dataset(model, dataset, spec, batch_size=batch_size, progress=progress)
    return score_predictions(predictions, dataset, class_names), predictions
