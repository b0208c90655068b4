"""Run a torch counting model over a counting set and score it with MAE, RMSE and NAE.

Each image is fitted to the model card's input as deployment fits it (`predict.predict_records`),
normalised with the card's mean/std and passed through `model.predict`; the density map is
mapped back to the image (`DensityMap.from_model_output`: cells over padding dropped), so
the count is the deployed model's count for the whole image. An image that cannot be
decoded is skipped with a warning and counted; it is not scored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from torch import nn

from leanvision.core import DataError, DensityMap, InputSpec
from leanvision.data.formats import CountingSet, Issue, PointRecord
from leanvision.evaluation.counting import CountingMetrics, counting_metrics
from leanvision.training.predict import Progress, predict_records

logger = logging.getLogger(__name__)


@dataclass
class CountPredictions:
    """Counts per scored image.

    Attributes:
        records: the images that were scored, in dataset order.
        maps: one `DensityMap` per record, in that image's pixels.
        skipped: images left out (undecodable), with the reason.
    """

    records: list[PointRecord] = field(default_factory=list)
    maps: list[DensityMap] = field(default_factory=list)
    skipped: list[Issue] = field(default_factory=list)

    @property
    def counts(self) -> list[float]:
        return [m.count for m in self.maps]

    @property
    def truth(self) -> list[float]:
        return [float(len(r.points)) for r in self.records]


def predict_counts(
    model: nn.Module,
    dataset: CountingSet,
    spec: InputSpec,
    *,
    output_stride: int,
    batch_size: int = 4,
    progress: Progress | None = None,
) -> CountPredictions:
    """`model.predict` over every image of `dataset` at the card's input size.

    Args:
        model: a counting model in eval mode.
        dataset: the images (and, unused here, their points).
        spec: the model card's input spec (size, resize mode, mean/std).
        output_stride: input pixels per density cell (the card's).
        batch_size: images per `predict` call.
        progress: called as `progress(done, total)` after each batch.
    """
    result = CountPredictions()
    for item in predict_records(dataset.images, lambda r: dataset.image_root / r.file_name, spec, model.predict,
                                batch_size=batch_size, progress=progress, skipped=result.skipped):
        result.records.append(item.record)
        result.maps.append(DensityMap.from_model_output(item.output.density, item.transform, output_stride))
    return result


def evaluate_counting(
    model: nn.Module,
    dataset: CountingSet,
    spec: InputSpec,
    *,
    output_stride: int,
    batch_size: int = 4,
    progress: Progress | None = None,
) -> tuple[CountingMetrics, CountPredictions]:
    """Predict over `dataset` and score MAE, RMSE and NAE against the number of points."""
    predictions = predict_counts(model, dataset, spec, output_stride=output_stride, batch_size=batch_size,
                                 progress=progress)
    if not predictions.records:
        raise DataError("no image of the evaluation set could be read", path=dataset.image_root)
    return counting_metrics(predictions.counts, predictions.truth), predictions
