"""Classification: ImageFolder / labels.csv sets, long-tail samplers, mixup / cutmix, best.pt by val top-1.

Reading a split screens it as the other tasks do (every image decoded once; an undecodable
one is left out with a warning and counted). What cannot be trained is refused with a
one-line DataError: a class folder without images, a class left without a readable image,
a validation class the training set does not have. Validation labels are mapped onto the
training set's classes by name, so a validation set may lack some classes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from leanvision.core import DataError, ModelCard, Task
from leanvision.data.formats import ClassificationSet, Issue, read_of_task
from leanvision.data.formats.classification import onto_classes
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

EMPTY_CLASS = "class folder has no images"


def screen_classification(dataset: ClassificationSet, *, workers: int = 2) -> tuple[ClassificationSet, list[Issue]]:
    """Decode every image once; drop the undecodable ones (one Issue each)."""
    paths = dataset.image_files()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        reasons = list(pool.map(verify_image, paths))
    issues = [Issue(str(path), reason) for path, reason in zip(paths, reasons, strict=True) if reason]
    kept = [item for item, reason in zip(dataset.items, reasons, strict=True) if not reason]
    return replace(dataset, items=kept, issues=list(dataset.issues)), issues


def load_classification_split(path: Path, *, split: str, workers: int,
                              classes: Sequence[str] | None = None) -> tuple[ClassificationSet, list[Issue]]:
    """Read and screen one split (labels onto `classes` when given); DataError if it cannot be used."""
    dataset = read_of_task(Path(path), Task.CLASSIFY)
    assert isinstance(dataset, ClassificationSet)
    empty = [i for i in dataset.issues if i.reason == EMPTY_CLASS]
    if empty and split == "train":
        raise DataError(f"{EMPTY_CLASS}: every class needs training images ({len(empty)} empty)", path=Path(empty[0].path))
    if classes is not None:
        dataset = onto_classes(dataset, classes, path=Path(path))
    dataset, unreadable = screen_classification(dataset, workers=workers)
    issues = [*(i for i in dataset.issues if i.reason != EMPTY_CLASS), *unreadable]
    for issue in issues:
        logger.warning("%s: %s", split, issue)
    if not dataset.items:
        raise DataError(f"the {split} set has no readable images", path=path)
    if split == "train":
        counts = class_counts(dataset)
        if (missing := [dataset.classes[c] for c in np.flatnonzero(counts == 0)]):
            raise DataError(f"class '{missing[0]}' has no readable training image", path=path)
    return dataset, issues


def class_counts(dataset: ClassificationSet) -> np.ndarray:
    """Images per class, (C,) int64."""
    return np.bincount([label for _, label in dataset.items], minlength=len(dataset.classes))


class ClassifyAdapter:
    """The classification task (see `tasks.base.TaskAdapter`)."""

    task = Task.CLASSIFY
    metric = "top1"
    higher_is_better = True
    metric_label = "top-1"
    shown = ("top1", "top5", "mean_class_accuracy")
    card_metrics = ("top1", "top5", "mean_class_accuracy")
    samplers = ("uniform", "class_balanced", "sqrt")
    tta_modes = ("none", "flip")
    ensembles = True  # `leanvision val --ensemble`: `validate` takes a list of models, their logits averaged

    def check_augment(self, steps: Sequence[Mapping[str, Any]]) -> None:
        from leanvision.data.augment.classify import build_classify_augmentation

        build_classify_augmentation(list(steps))

    def load_data(self, data: DataOptions, *, workers: int) -> TrainData:
        from leanvision.training.data import TrainData

        train, skipped = load_classification_split(data.train, split="train", workers=workers)
        if len(train.classes) < 2:
            raise DataError(f"a classifier needs at least 2 classes, the training set has {len(train.classes)}",
                            path=data.train)
        val = None
        if data.val is not None:
            val, val_skipped = load_classification_split(data.val, split="val", workers=workers, classes=train.classes)
            skipped += val_skipped
        return TrainData(train, val, tuple(train.classes), skipped,
                         class_counts=tuple(int(c) for c in class_counts(train)))

    def model_overrides(self, model: nn.Module, options: ModelOptions, data: TrainData,
                        data_options: DataOptions, augment: AugmentOptions) -> dict[str, Any]:
        return {}  # nothing in a classifier is fitted to the data

    def train_loader(self, data: TrainData, card: ModelCard, model: nn.Module, *, augment: AugmentOptions,
                     loader: LoaderOptions, seed: int) -> DataLoader:
        import torch
        from torch.utils.data import DataLoader

        from leanvision.data.augment.classify import build_classify_augmentation
        from leanvision.data.torch_classify import ClassificationDataset, ClassSampler, MixCollate
        from leanvision.data.torch_dataset import collate

        ops = build_classify_augmentation(list(augment.steps)) if augment.steps else None
        dataset = ClassificationDataset(data.train, augment=ops, spec=card.input, seed=seed)
        sampler = ClassSampler(dataset.labels, loader.sampler, seed=seed)
        mixing = ops is not None and ops.batch.enabled
        return DataLoader(
            dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.workers,
            collate_fn=MixCollate(ops.batch, len(data.classes), seed=seed, dataset=dataset) if mixing else collate,
            # BatchNorm in the expanded head cannot take a batch of one.
            drop_last=len(dataset) > loader.batch_size, persistent_workers=loader.workers > 0,
            generator=torch.Generator().manual_seed(seed),
        )

    def evaluator(self, val: Any, card: ModelCard, *, batch_size: int) -> Evaluate:
        from leanvision.evaluation.classification import classification_metrics
        from leanvision.training.classify_eval import predict_logits

        counts = np.asarray(card.class_counts) if card.class_counts else None

        def evaluate(model: nn.Module) -> dict[str, float]:
            predictions = predict_logits(model, val, card.input, batch_size=batch_size)
            metrics = classification_metrics(predictions.logits, predictions.labels, train_counts=counts)
            return {k: v for k, v in metrics.to_dict().items() if isinstance(v, float)}

        return evaluate

    def validate(self, model: nn.Module, labelled: LabelledSet, card: ModelCard, *, batch_size: int,
                 progress: Callable[[int, int], None] | None, out_dir: Path, tta: str = "none") -> Validation:
        from leanvision.evaluation.classification import classification_metrics
        from leanvision.training.classify_eval import predict_logits

        predictions = predict_logits(model, labelled.dataset, card.input, batch_size=batch_size, tta=tta,
                                     progress=progress)
        counts = np.asarray(card.class_counts) if card.class_counts else None
        metrics = classification_metrics(predictions.logits, predictions.labels, train_counts=counts)
        gallery_line, gallery_json = error_gallery(
            predictions.logits, predictions.labels,
            [labelled.dataset.image_root / r.file_name for r in predictions.records], card.class_names, out_dir)
        lines = validation_lines(labelled.path, metrics, card.class_names, len(predictions.records),
                                 len(predictions.skipped), tta=tta)
        return Validation((*lines, gallery_line),
                          {"skipped": [str(i) for i in predictions.skipped], "tta": tta, **metrics.to_dict(),
                           **gallery_json})


def error_gallery(logits: np.ndarray, labels: np.ndarray, paths: Sequence[Path], class_names: Sequence[str],
                  out_dir: Path) -> tuple[str, dict[str, Any]]:
    """Write `out_dir/worst_errors.png`: the misclassified images (rows of `logits` against
    `labels`, files `paths`) most confident in the wrong class, at most `MAX_TILES`. Returns
    the report line and the metrics.json entries (`misclassified`, `worst_errors_png`,
    `worst_errors`). With no error no gallery is drawn, and one a previous run left in
    `out_dir` is removed, so the folder never shows another run's errors."""
    from leanvision.evaluation import gallery

    errors = gallery.worst_errors(logits, labels)
    target = Path(out_dir) / gallery.GALLERY_NAME
    if not errors:
        target.unlink(missing_ok=True)
        return (f"no misclassified image: no {gallery.GALLERY_NAME}",
                {"misclassified": 0, "worst_errors_png": None, "worst_errors": []})
    shown = errors[:gallery.MAX_TILES]
    gallery.write_error_gallery([paths[e.index] for e in shown], [class_names[e.true] for e in shown],
                                [class_names[e.predicted] for e in shown], [e.confidence for e in shown], target,
                                title=f"{len(shown)} of {len(errors)} misclassified images, most confident first")
    listed = [{"file": str(paths[e.index]), "true": e.true, "true_name": class_names[e.true],
               "predicted": e.predicted, "predicted_name": class_names[e.predicted], "confidence": e.confidence}
              for e in shown]
    return (f"worst errors ({len(shown)} of {len(errors)} misclassified images, most confident first): {target}",
            {"misclassified": len(errors), "worst_errors_png": str(target), "worst_errors": listed})


def validation_lines(path: Path, metrics: Any, class_names: Sequence[str], images: int, skipped: int, *,
                     tta: str) -> tuple[str, ...]:
    """What `leanvision val` prints for a classifier."""
    figures = metrics.to_dict()
    lines = [f"{path}: {images} images, {len(class_names)} classes, {skipped} images skipped"
             + (" (flip TTA)" if tta == "flip" else ""),
             f"top-1 {figures['top1']:.4f}  top-5 {figures['top5']:.4f}  mean class accuracy "
             f"{figures['mean_class_accuracy']:.4f}  ECE {figures['ece']:.4f}"]
    groups = [(g, figures.get(f"{g}_top1")) for g in ("head", "medium", "tail")]
    if any(value is not None for _, value in groups):
        shown = "  ".join(f"{g} {'-' if v is None else format(v, '.4f')}" for g, v in groups)
        lines.append(f"long tail (classes in thirds by training images): {shown}")
    for pair in list(figures.get("confused_pairs") or [])[:5]:
        lines.append(f"confused: {class_names[pair['true']]} -> {class_names[pair['predicted']]} "
                     f"{pair['count']}x")
    return tuple(lines)
