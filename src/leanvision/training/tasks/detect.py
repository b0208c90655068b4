"""Detection: COCO / VOC / YOLO sets, box targets, S0's augmentations, best.pt by val mAP@0.5."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leanvision.core import DataError, ModelCard, Task
from leanvision.core.errors import plural
from leanvision.data.formats import DetectionSet
from leanvision.training.tasks.base import Validation

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import DataLoader

    from leanvision.data.labelled import LabelledSet
    from leanvision.training.config import (
        AugmentOptions,
        DataOptions,
        LoaderOptions,
        ModelOptions,
        TrainConfig,
    )
    from leanvision.training.data import TrainData
    from leanvision.training.tasks.base import Evaluate


logger = logging.getLogger(__name__)

# YOLOv5's AutoAnchor keeps anchors that reach 98 % of the boxes; a class below 90 % (tiny
# platelets among larger cells) is refit for too, as it is the one that would collapse.
AUTO_ANCHOR_RECALL = 0.98
AUTO_ANCHOR_CLASS_RECALL = 0.9


def _no_negatives_yet(rng: Any) -> Any:
    raise RuntimeError("placeholder negative source: only used to check the recipe")


def build_detection_augmentation(augment: AugmentOptions, train_set: DetectionSet) -> Any:
    """The recipe's augmentation; negatives from `augment.negatives` or the training set's own."""
    if not augment.steps:
        return None
    from leanvision.data.augment import ImagePool, build_augmentation, negative_pool
    from leanvision.data.images import list_images

    folder = augment.negatives
    if folder is not None:
        paths = list(list_images(Path(folder))) if Path(folder).is_dir() else []
        if not paths:
            raise DataError("augment.negatives: no images in this folder", path=folder)
        negatives = ImagePool(paths)
    else:
        negatives = negative_pool(train_set)
    steps = list(augment.steps)
    if negatives is None and any(step.get("op") == "replace_background" for step in steps):
        # S0 pasted cells onto negative slide tiles; a set of photos that all hold objects
        # (the public blood-cell sets) has none, and the rest of the recipe still applies.
        logger.warning("replace_background is skipped: the training set has no negative images (images without "
                       "boxes) to paste onto; add some, or name a folder of them in augment.negatives")
        steps = [step for step in steps if step.get("op") != "replace_background"]
    return build_augmentation(steps, negatives=negatives)


def training_box_shapes(train_set: DetectionSet, data_options: DataOptions,
                        augment: AugmentOptions) -> tuple[Any, Any]:
    """Every box's (width, height) at the size the model trains on it, and its label: a
    fixed-scale crop step (S0's 800 -> 400) sets that size, as the dataset then only pads;
    else the card's scale, or each image's fit to the input."""
    from leanvision.data.anchors import box_shapes

    fixed = _fixed_scale(augment)
    if fixed != 1.0:
        return box_shapes(train_set, scale=fixed)
    return box_shapes(train_set, input_hw=data_options.input_size, resize=data_options.resize,
                      scale=data_options.scale)


# A class whose median box side is below this at the training scale spans under two cells of
# the finest (stride-8) level: the real blood-cell set's 20-30 px platelets at S0's scale 0.5.
SMALL_BOX_PX = 12.0
# Below this share of image in a training window (the rest padding), the recipe's crop does
# not suit the data: S0's 800 px windows hold 48 % of a 640x480 photo.
MIN_WINDOW_COVER = 0.6


def scale_warnings(train_set: DetectionSet, data_options: DataOptions, augment: AugmentOptions) -> list[str]:
    """What the recipe's scale does to this data that a user should know before training: a
    class whose boxes become tiny, and crop windows much larger than the images (S0's 800 px
    windows at scale 0.5 suit large slides, not 640x480 photos)."""
    import numpy as np

    from leanvision.data.augment.geometric import OnlineCropResize

    warnings = []
    boxes, labels = training_box_shapes(train_set, data_options, augment)
    sides = np.sqrt(np.prod(boxes, axis=1)) if len(boxes) else np.zeros(0)
    scale = _training_scale(data_options, augment)
    for index, name in enumerate(train_set.classes):
        mine = sides[labels == index]
        if len(mine) and float(np.median(mine)) < SMALL_BOX_PX:
            warnings.append(f"class '{name}': its boxes are {np.median(mine):.0f} px (median side) at the training "
                            f"scale {scale:g}, near the limit of the finest (stride-8) feature level; auto_anchors "
                            "fits anchors to them, but watch this class's AP: if it stays low, train at a larger "
                            "scale (data.scale and the crop's size; twice the scale is 4x the pixels a step)")
    crops = [int(step.get("crop", OnlineCropResize.crop)) for step in augment.steps
             if step.get("op") == "online_crop_resize"]
    if crops and train_set.images:
        longest = float(np.median([max(r.width, r.height) for r in train_set.images]))
        covered = float(np.median([min(r.width, crops[0]) * min(r.height, crops[0]) for r in train_set.images]))
        covered /= crops[0] ** 2
        if covered < MIN_WINDOW_COVER:
            warnings.append(f"online_crop_resize cuts {crops[0]} px windows from images of {longest:.0f} px (median "
                            f"longest side): about {1 - covered:.0%} of each training input is padding; set its crop "
                            "near the image size (and size = crop x data.scale)")
    return warnings


# Windows are fitted in steps of this many model-input pixels (the coarsest stride a
# RetinaNet level pools to, P5, divides it), so a fitted input stays a valid model size.
WINDOW_STEP_PX = 32


def fit_windows(data_options: DataOptions, augment: AugmentOptions,
                train_set: DetectionSet) -> tuple[DataOptions, AugmentOptions, str] | None:
    """The recipe with its `online_crop_resize` windows shrunk to the training images, when
    every image is smaller than a window: the part of each window past the image is only
    padding, computed and never learned from. Same scale, same image content per sample.

    S0's 800 px windows (400 px inputs) on 640x480 photos become 640 px windows (320 px
    inputs): 1.7x the epochs in a budget and, at 8 minutes on the synthetic blood set, val
    mAP@0.5 0.866 -> 0.959 (BENCHMARKS.md, issue 16). The model input follows when it was
    the windows' output size. None when nothing changes.
    """
    import math

    from leanvision.data.augment.geometric import OnlineCropResize

    steps = list(augment.steps)
    where = next((i for i, step in enumerate(steps) if step.get("op") == "online_crop_resize"), None)
    if where is None or not train_set.images:
        return None
    crop = int(steps[where].get("crop", OnlineCropResize.crop))
    size = int(steps[where].get("size", OnlineCropResize.size))
    longest = max(max(r.width, r.height) for r in train_set.images)
    new_size = math.ceil(longest * size / crop / WINDOW_STEP_PX) * WINDOW_STEP_PX
    if new_size >= size:
        return None
    new_crop = round(new_size * crop / size)
    steps[where] = {**steps[where], "crop": new_crop, "size": new_size}
    note = (f"online_crop_resize: {new_crop} px windows into {new_size} px inputs instead of {crop} into {size} "
            f"(no training image is over {longest} px: the rest of a {crop} px window would be padding)")
    if tuple(data_options.input_size) == (size, size):
        data_options = dataclasses.replace(data_options, input_size=(new_size, new_size))
        note += f"; model input {new_size}x{new_size}"
    return data_options, dataclasses.replace(augment, steps=type(augment.steps)(steps)), note


def _fixed_scale(augment: AugmentOptions) -> float:
    """The scale a fixed-scale crop step applies (S0's 800 -> 400: 0.5), else 1."""
    from leanvision.data.augment import build_augmentation

    return build_augmentation(list(augment.steps), negatives=_no_negatives_yet).scale if augment.steps else 1.0


def _training_scale(data_options: DataOptions, augment: AugmentOptions) -> float:
    fixed = _fixed_scale(augment)
    return fixed if fixed != 1.0 else (data_options.scale or 1.0)


# What picks best.pt: Ultralytics' `fitness` (0.1 mAP@0.5 + 0.9 mAP@[.5:.95]). On the synthetic
# S0 set mAP@0.5 saturates early (0.9997 at epoch 46 of 100) and picking by it kept a
# checkpoint with mAP 0.654 where epoch 79 had 0.731 (BENCHMARKS.md, issue 16): the fitness
# still ranks by detection when mAP@0.5 is low and by localisation once it is not.
FITNESS_WEIGHTS = {"map50": 0.1, "map": 0.9}


def detection_fitness(summary: Mapping[str, float]) -> float:
    """The weighted sum of FITNESS_WEIGHTS over an evaluation summary."""
    return sum(weight * summary[key] for key, weight in FITNESS_WEIGHTS.items())


class DetectAdapter:
    """The detection task (see `tasks.base.TaskAdapter`)."""

    task = Task.DETECT
    metric = "fitness"
    higher_is_better = True
    metric_label = "fitness (0.1 mAP@0.5 + 0.9 mAP)"
    shown = ("map50", "map", "ar100")
    card_metrics = ("map", "map50", "map75", "ar100")

    def check_augment(self, steps: Sequence[Mapping[str, Any]]) -> None:
        """Build the augmentation once; the negative images are found only when training
        starts (from the data), so the check uses a placeholder source that is never called."""
        from leanvision.data.augment import build_augmentation

        build_augmentation(list(steps), negatives=_no_negatives_yet)

    def fit_to_data(self, config: TrainConfig, data: TrainData) -> TrainConfig:
        """The recipe's crop windows fitted to small training images (`fit_windows`)."""
        fitted = fit_windows(config.data, config.augment, data.train)
        if fitted is None:
            return config
        data_options, augment, note = fitted
        logger.warning(note)
        return config.replace(data=data_options, augment=augment)

    def load_data(self, data: DataOptions, *, workers: int) -> TrainData:
        from leanvision.training.data import load_train_data

        return load_train_data(data.train, data.val, workers=workers)

    def model_overrides(self, model: nn.Module, options: ModelOptions, data: TrainData,
                        data_options: DataOptions, augment: AugmentOptions) -> dict[str, Any]:
        """With `auto_anchors`, anchors fitted to the training boxes when the model's reach too
        few of them at the matcher's foreground IoU (see `ModelOptions.auto_anchors`). Warns
        first when the recipe's scale leaves a class tiny or its inputs mostly padding."""
        for warning in scale_warnings(data.train, data_options, augment):
            logger.warning(warning)
        ratios = {tuple(r) for r in getattr(model, "aspect_ratios", ())}
        if not options.auto_anchors or "anchor_sizes" in options.overrides or len(ratios) != 1:
            return {}
        from leanvision.data.anchors import fit_anchors

        boxes, labels = training_box_shapes(data.train, data_options, augment)
        if not len(boxes):
            return {}
        fitted = fit_anchors(boxes, labels, data.classes, sizes=model.anchor_sizes, ratios=ratios.pop(),
                             threshold=model.fg_iou_threshold)
        worst = min(row["before"] for row in fitted.per_class.values())
        if (fitted.coverage_before >= AUTO_ANCHOR_RECALL and worst >= AUTO_ANCHOR_CLASS_RECALL) or (
                fitted.coverage_after <= fitted.coverage_before):
            logger.info("anchors kept: they reach %.1f%% of the training boxes (worst class %.1f%%)",
                        100 * fitted.coverage_before, 100 * worst)
            return {}
        logger.warning("anchors refit to the training boxes: %.1f%% -> %.1f%% reached at IoU %.2g "
                       "(sizes x%.3g, ratios %s); per class: %s", 100 * fitted.coverage_before,
                       100 * fitted.coverage_after, fitted.threshold, fitted.factor, list(fitted.ratios),
                       ", ".join(f"{k} {v['before']:.0%} -> {v['after']:.0%}" for k, v in fitted.per_class.items()))
        return fitted.overrides()

    def train_loader(self, data: TrainData, card: ModelCard, model: nn.Module, *, augment: AugmentOptions,
                     loader: LoaderOptions, seed: int) -> DataLoader:
        from leanvision.training.data import train_loader

        return train_loader(data.train, card.input, augment=build_detection_augmentation(augment, data.train),
                            seed=seed, batch_size=loader.batch_size, workers=loader.workers)

    def evaluator(self, val: Any, card: ModelCard, *, batch_size: int) -> Evaluate:
        from leanvision.training.predict import evaluate_model

        def evaluate(model: nn.Module) -> dict[str, float]:
            metrics, _ = evaluate_model(model, val, card.input, class_names=card.class_names,
                                        batch_size=batch_size)
            summary = metrics.summary()
            return {**summary, "fitness": detection_fitness(summary)}

        return evaluate

    def validate(self, model: nn.Module, labelled: LabelledSet, card: ModelCard, *, batch_size: int,
                 progress: Callable[[int, int], None] | None, out_dir: Path) -> Validation:
        from leanvision.evaluation.detection import plot_pr_curve
        from leanvision.training.predict import evaluate_model

        metrics, predictions = evaluate_model(model, labelled.dataset, card.input, class_names=card.class_names,
                                              batch_size=batch_size, progress=progress)
        plot_pr_curve(metrics, out_dir / "pr_curve.png")
        lines = [
            f"{labelled.path}: {plural(metrics.num_images, 'image')} ({metrics.num_negative_images} negative), "
            f"{plural(metrics.num_ground_truth, 'box', 'boxes')}, {plural(metrics.num_predictions, 'detection')}, "
            f"{plural(len(predictions.skipped), 'image')} skipped",
            f"mAP@[.5:.95] {metrics.map:.4f}  mAP@0.5 {metrics.map50:.4f}  mAP@0.75 {metrics.map75:.4f}  "
            f"AR@100 {metrics.ar100:.4f}",
            *(f"  {name}: AP@0.5 {metrics.ap50_per_class[name]:.4f}  AP {metrics.ap_per_class[name]:.4f}"
              for name in metrics.class_names),
            f"PR curve: {out_dir / 'pr_curve.png'}",
        ]
        return Validation(tuple(lines), {"skipped": [str(i) for i in predictions.skipped], **metrics.to_dict()})
