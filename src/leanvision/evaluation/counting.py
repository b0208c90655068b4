"""Crowd-counting metrics: MAE, RMSE and NAE over per-image counts.

RMSE is named for what it is: many counting repositories print it as "MSE".
NAE = mean |pred - gt| / gt over images with gt > 0; images with no people are left out of
NAE only (as NWPU-Crowd's scorer does), never out of MAE and RMSE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from leanvision.core.errors import DataError


@dataclass(frozen=True)
class CountingMetrics:
    mae: float
    rmse: float
    nae: float
    images: int
    nae_images: int  # images with gt > 0, over which NAE is averaged

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def counting_metrics(predicted: Sequence[float], ground_truth: Sequence[float]) -> CountingMetrics:
    """MAE, RMSE and NAE of predicted vs ground-truth counts (one value per image)."""
    pred = np.asarray(predicted, np.float64)
    gt = np.asarray(ground_truth, np.float64)
    if pred.shape != gt.shape or pred.ndim != 1:
        raise DataError(f"need one predicted and one true count per image, got {pred.shape} and {gt.shape}")
    if not len(gt):
        raise DataError("no images to evaluate")
    error = np.abs(pred - gt)
    positive = gt > 0
    nae = float((error[positive] / gt[positive]).mean()) if positive.any() else float("nan")
    return CountingMetrics(
        mae=float(error.mean()),
        rmse=float(np.sqrt(((pred - gt) ** 2).mean())),
        nae=nae,
        images=len(gt),
        nae_images=int(positive.sum()),
    )


@dataclass(frozen=True)
class CountingScorer:
    """Scores predicted counts against fixed true counts: `scorer(predictions) -> metrics`.

    Predictions are numbers or objects with a `count` attribute (e.g. `core.DensityMap`).
    A picklable callable, so benchmarks can score in the processes they isolate engines in.
    """

    ground_truth: tuple[float, ...]

    def __call__(self, predictions: Sequence) -> dict[str, float]:
        counts = [float(getattr(p, "count", p)) for p in predictions]
        return counting_metrics(counts, self.ground_truth).to_dict()
