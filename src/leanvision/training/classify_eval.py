"""Run a torch classifier over a classification set and score it (top-1, top-5, per class, long tail, ECE).

Each image is placed in the model card's input as deployment places it
(`predict.predict_records`), normalised with the card's mean/std, and its logits kept; with
flip TTA the logits of the mirrored input are averaged in, as `ClassifyPredictor` does. An
image that cannot be decoded is skipped with a warning and counted; it is not scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from leanvision.core import DataError, InputSpec
from leanvision.core.letterbox import FitTransform
from leanvision.data.formats import ClassificationSet, Issue
from leanvision.data.torch_classify import LabelledImage
from leanvision.runtime.classify import with_mirrors
from leanvision.training.predict import Progress, predict_records


@dataclass
class ClassPredictions:
    """Logits per scored image.

    Attributes:
        records: the images that were scored, in dataset order.
        logits: (N, C) float32, one row per record.
        skipped: images left out (undecodable), with the reason.
    """

    records: list[LabelledImage] = field(default_factory=list)
    logits: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    skipped: list[Issue] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], np.int64)


def tta_logits(model: nn.Module, images: torch.Tensor, transforms: Sequence[FitTransform],
               tta: str = "none") -> torch.Tensor:
    """The model's logits of normalised images; with `tta="flip"` averaged with those of each
    image's mirror (its image region mirrored, padding left in place: `ClassifyPredictor`'s
    `runtime.classify.with_mirrors`)."""
    if tta == "none":
        return model(images).float()
    if tta != "flip":
        raise ValueError(f"tta must be 'none' or 'flip', got {tta!r}")
    doubled = torch.from_numpy(with_mirrors(images.numpy(), transforms))
    return model(doubled).float().reshape(len(transforms), 2, -1).mean(dim=1)


def predict_logits(models: nn.Module | Sequence[nn.Module], dataset: ClassificationSet, spec: InputSpec, *,
                   batch_size: int = 16, tta: str = "none", progress: Progress | None = None) -> ClassPredictions:
    """Logits of every image of `dataset` at the card's input: one model's, or the mean of
    an ensemble's (S1 averaged the logits of three models)."""
    ensemble = list(models) if isinstance(models, Sequence) else [models]
    records = [LabelledImage(name, label) for name, label in dataset.items]
    result = ClassPredictions()
    rows = []

    def infer(images: torch.Tensor, transforms: Sequence[FitTransform]) -> torch.Tensor:
        return torch.stack([tta_logits(m, images, transforms, tta) for m in ensemble]).mean(0)

    for item in predict_records(records, lambda r: dataset.image_root / r.file_name, spec, infer,
                                batch_size=batch_size, progress=progress, skipped=result.skipped,
                                with_transforms=True):
        result.records.append(item.record)
        rows.append(item.output.numpy())
    if not rows:
        raise DataError("no image of the evaluation set could be read", path=dataset.image_root)
    result.logits = np.stack(rows).astype(np.float32)
    return result
