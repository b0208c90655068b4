"""Counting: points sets, density-map targets, count-preserving augmentations, best.pt by val MAE.

Reading a split screens it as detection does (every image decoded once, undecodable ones
left out with a warning) and drops the points outside their image (`leanvision data check`
reports them): the ground-truth count of an image is the number of its points inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leanvision.core import ConfigError, DataError, DensitySpec, ModelCard, Task
from leanvision.core.errors import plural
from leanvision.data.formats import CountingSet, Issue, drop_outside_points, read_counting
from leanvision.data.images import verify_image
from leanvision.training.tasks.base import Validation

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import DataLoader

    from leanvision.data.labelled import LabelledSet
    from leanvision.training.config import AugmentOptions, DataOptions, LoaderOptions, ModelOptions
    from leanvision.training.data import TrainData
    from leanvision.training.tasks.base import Evaluate

logger = logging.getLogger(__name__)

COUNT_CLASSES = ("object",)  # a counting model counts one kind of object (S3: heads)


def screen_counting(dataset: CountingSet, *, workers: int = 2) -> tuple[CountingSet, list[Issue]]:
    """Decode every image once; drop the undecodable ones (one Issue each)."""
    paths = [dataset.image_root / record.file_name for record in dataset.images]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        reasons = list(pool.map(verify_image, paths))
    issues = [Issue(str(path), reason) for path, reason in zip(paths, reasons, strict=True) if reason]
    kept = [record for record, reason in zip(dataset.images, reasons, strict=True) if not reason]
    return replace(dataset, images=kept), issues


def load_counting_split(path: Path, *, split: str, workers: int) -> tuple[CountingSet, list[Issue]]:
    """Read and screen one split; DataError if no image is readable."""
    dataset = read_counting(path)
    dataset, outside = drop_outside_points(dataset)
    dataset, unreadable = screen_counting(dataset, workers=workers)
    issues = [*dataset.issues, *outside, *unreadable]
    for issue in issues:
        logger.warning("%s: %s", split, issue)
    if not dataset.images:
        raise DataError(f"the {split} set has no readable images", path=path)
    return dataset, issues


def output_stride(card: ModelCard) -> int:
    """The card's output stride (input pixels per density cell); ConfigError if it has none."""
    if card.output_stride is None:
        raise ConfigError(f"model '{card.name}' is a counting model but its card has no output_stride")
    return card.output_stride


class CountAdapter:
    """The counting task (see `tasks.base.TaskAdapter`)."""

    task = Task.COUNT
    metric = "mae"
    higher_is_better = False
    metric_label = "MAE"
    shown = ("mae", "rmse", "nae")
    card_metrics = ("mae", "rmse", "nae")

    def check_augment(self, steps: Sequence[Mapping[str, Any]]) -> None:
        from leanvision.data.augment.counting import build_count_augmentation

        build_count_augmentation(list(steps))

    def load_data(self, data: DataOptions, *, workers: int) -> TrainData:
        from leanvision.training.data import TrainData

        train, skipped = load_counting_split(data.train, split="train", workers=workers)
        if not any(len(r.points) for r in train.images):
            raise DataError("the train set has no head points at all: nothing to learn to count", path=data.train)
        val = None
        if data.val is not None:
            val, val_skipped = load_counting_split(data.val, split="val", workers=workers)
            skipped += val_skipped
        return TrainData(train, val, COUNT_CLASSES, skipped)

    def model_overrides(self, model: nn.Module, options: ModelOptions, data: TrainData,
                        data_options: DataOptions, augment: AugmentOptions) -> dict[str, Any]:
        return {}  # a density model has nothing fitted to the data

    def train_loader(self, data: TrainData, card: ModelCard, model: nn.Module, *, augment: AugmentOptions,
                     loader: LoaderOptions, seed: int) -> DataLoader:
        from leanvision.data.augment.counting import build_count_augmentation
        from leanvision.data.torch_counting import CountingDataset
        from leanvision.training.data import deterministic_loader

        spec = card.input
        ops = build_count_augmentation(list(augment.steps)) if augment.steps else None
        # The density models are fully convolutional: they train on fixed-size crops as cut,
        # not stretched to the card's input (a 288 x 384 crop fitted to 576 x 768 would show
        # heads at twice the scale deployment sees, at four times the cost).
        crop = ops.output_size if ops is not None and spec.scale is None else None
        dataset = CountingDataset(data.train, augment=ops, input_size=crop or (spec.height, spec.width), seed=seed,
                                  density=getattr(model, "density", DensitySpec()), stride=output_stride(card),
                                  resize=spec.resize, pad_value=spec.pad_value, scale=spec.scale)
        return deterministic_loader(dataset, seed=seed, batch_size=loader.batch_size, workers=loader.workers)

    def evaluator(self, val: Any, card: ModelCard, *, batch_size: int) -> Evaluate:
        from leanvision.training.count_eval import evaluate_counting

        def evaluate(model: nn.Module) -> dict[str, float]:
            metrics, _ = evaluate_counting(model, val, card.input, output_stride=output_stride(card),
                                           batch_size=batch_size)
            return {"mae": metrics.mae, "rmse": metrics.rmse, "nae": metrics.nae}

        return evaluate

    def validate(self, model: nn.Module, labelled: LabelledSet, card: ModelCard, *, batch_size: int,
                 progress: Callable[[int, int], None] | None, out_dir: Path) -> Validation:
        from leanvision.training.count_eval import evaluate_counting

        metrics, predictions = evaluate_counting(model, labelled.dataset, card.input, output_stride=output_stride(card),
                                                 batch_size=batch_size, progress=progress)
        lines = (
            f"{labelled.path}: {plural(metrics.images, 'image')} ({metrics.images - metrics.nae_images} without "
            f"people), {plural(int(sum(predictions.truth)), 'person', 'people')}, "
            f"{plural(len(predictions.skipped), 'image')} skipped",
            f"MAE {metrics.mae:.3f}  RMSE {metrics.rmse:.3f}  NAE {metrics.nae:.4f} (over "
            f"{plural(metrics.nae_images, 'image')} with people)",
        )
        per_image = [{"file_name": r.file_name, "true": t, "predicted": round(p, 3)}
                     for r, t, p in zip(predictions.records, predictions.truth, predictions.counts, strict=True)]
        return Validation(lines, {"skipped": [str(i) for i in predictions.skipped], **metrics.to_dict(),
                                  "images_counted": per_image})
