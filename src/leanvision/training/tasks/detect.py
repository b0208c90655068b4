"""Detection: COCO / VOC / YOLO sets, box targets, S0's augmentations, best.pt by val mAP@0.5."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leanvision.core import DataError, ModelCard, Task
from leanvision.data.formats import DetectionSet

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import DataLoader

    from leanvision.training.config import TrainConfig
    from leanvision.training.data import TrainData
    from leanvision.training.tasks.base import Evaluate


def _no_negatives_yet(rng: Any) -> Any:
    raise RuntimeError("placeholder negative source: only used to check the recipe")


def build_detection_augmentation(config: TrainConfig, train_set: DetectionSet) -> Any:
    """The recipe's augmentation; negatives from `augment.negatives` or the training set's own."""
    if not config.augment.steps:
        return None
    from leanvision.data.augment import ImagePool, build_augmentation, negative_pool
    from leanvision.data.images import list_images

    folder = config.augment.negatives
    if folder is not None:
        paths = list(list_images(Path(folder))) if Path(folder).is_dir() else []
        if not paths:
            raise DataError("augment.negatives: no images in this folder", path=folder)
        negatives = ImagePool(paths)
    else:
        negatives = negative_pool(train_set)
    return build_augmentation(list(config.augment.steps), negatives=negatives)


class DetectAdapter:
    """The detection task (see `tasks.base.TaskAdapter`)."""

    task = Task.DETECT
    metric = "map50"
    higher_is_better = True
    metric_label = "mAP@0.5"
    shown = ("map50", "map", "ar100")
    card_metrics = ("map", "map50", "map75", "ar100")

    def check_augment(self, steps: Sequence[Mapping[str, Any]]) -> None:
        """Build the augmentation once; the negative images are found only when training
        starts (from the data), so the check uses a placeholder source that is never called."""
        from leanvision.data.augment import build_augmentation

        build_augmentation(list(steps), negatives=_no_negatives_yet)

    def load_data(self, config: TrainConfig) -> TrainData:
        from leanvision.training.data import load_train_data

        return load_train_data(config.data.train, config.data.val, workers=max(1, config.loader.workers))

    def train_loader(self, config: TrainConfig, data: TrainData, card: ModelCard, model: nn.Module) -> DataLoader:
        from leanvision.training.data import train_loader

        return train_loader(data.train, card.input, augment=build_detection_augmentation(config, data.train),
                            seed=config.seed, batch_size=config.loader.batch_size, workers=config.loader.workers)

    def evaluator(self, config: TrainConfig, val: Any, card: ModelCard) -> Evaluate:
        from leanvision.training.predict import evaluate_model

        def evaluate(model: nn.Module) -> dict[str, float]:
            metrics, _ = evaluate_model(model, val, card.input, class_names=card.class_names,
                                        batch_size=config.eval.batch_size)
            return metrics.summary()

        return evaluate
