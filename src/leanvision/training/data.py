"""Datasets and loaders for training: read, screen, check, then batch deterministically.

Data order is a permutation drawn from (seed, epoch) and augmentation randomness from
(seed, epoch, index) (`data.augment.common.sample_rng`), so which batches a step sees does
not depend on workers, RNG streams or whether the run was resumed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from leanvision.core import DataError, InputSpec
from leanvision.data.formats import DetectionSet, Issue, read_detection
from leanvision.data.images import verify_image

logger = logging.getLogger(__name__)


@dataclass
class TrainData:
    """The screened training and validation sets.

    Attributes:
        train, val: readable images only (a `DetectionSet`, or a `CountingSet` for
            counting); `val` is None when not configured.
        classes: class names (the training set's; counting: the one class counted).
        skipped: images and labels left out, with the reason (warned about when found).
        class_counts: training images per class where the task counts them
            (classification: the card keeps them for the long-tail report of `val`).
    """

    train: Any
    val: Any | None
    classes: tuple[str, ...]
    skipped: list[Issue] = field(default_factory=list)
    class_counts: tuple[int, ...] = ()


def screen_images(dataset: DetectionSet, *, workers: int = 2) -> tuple[DetectionSet, list[Issue]]:
    """Decode every image once (reduced-scale where the codec allows); drop the bad ones.

    Returns:
        (the set without undecodable images, one Issue per image dropped)
    """
    paths = [dataset.image_path(record) for record in dataset.images]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        reasons = list(pool.map(verify_image, paths))
    issues = [Issue(str(path), reason) for path, reason in zip(paths, reasons, strict=True) if reason]
    for issue in issues:
        logger.warning("skipping image %s", issue)
    kept = [record for record, reason in zip(dataset.images, reasons, strict=True) if not reason]
    return dataset.replace(images=kept), issues


def load_split(path: Path, *, split: str, workers: int) -> tuple[DetectionSet, list[Issue]]:
    """Read and screen one split; DataError if it is empty or has no positive box."""
    dataset = read_detection(Path(path))
    dataset, partly_read = dataset.without_partly_read()
    for issue in [*dataset.issues, *partly_read]:
        logger.warning("%s labels: %s (left out)", split, issue)
    dataset, skipped = screen_images(dataset, workers=workers)
    if not dataset.images:
        raise DataError(f"the {split} set has no readable images", path=path)
    if dataset.num_objects == 0:
        raise DataError(f"the {split} set has no positive boxes: nothing to learn or score", path=path)
    return dataset, list(dataset.issues) + partly_read + skipped


def load_train_data(train: Path, val: Path | None, *, workers: int = 2) -> TrainData:
    """Both splits, checked to share one class list."""
    train_set, skipped = load_split(train, split="train", workers=workers)
    val_set = None
    if val is not None:
        val_set, val_skipped = load_split(val, split="val", workers=workers)
        skipped += val_skipped
        if val_set.classes != train_set.classes:
            raise DataError(f"val classes {list(val_set.classes)} differ from train classes "
                            f"{list(train_set.classes)}", path=val)
    return TrainData(train_set, val_set, train_set.classes, skipped)


class EpochSampler(Sampler[int]):
    """A fresh permutation of range(n) per epoch, drawn from (seed, epoch) alone."""

    def __init__(self, size: int, *, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng([self.seed, self.epoch, 0x5A3]).permutation(self.size)
        return iter(order.tolist())


def train_loader(
    dataset: DetectionSet,
    spec: InputSpec,
    *,
    augment: Any,
    seed: int,
    batch_size: int,
    workers: int,
) -> DataLoader:
    """A DataLoader of `(uint8 (N, 3, H, W), targets, indices)` batches at the card's input.

    Samples are fitted to the input as the card says (`spec.resize`, `scale`, `pad_value`), the
    way evaluation and deployment fit images. Workers are persistent: the dataset keeps its
    epoch in shared memory, so `set_epoch` reaches them.
    """
    from leanvision.data.torch_dataset import DetectionDataset

    torch_set = DetectionDataset(dataset, augment=augment, input_size=(spec.height, spec.width), seed=seed,
                                 resize=spec.resize, pad_value=spec.pad_value, scale=spec.scale)
    return deterministic_loader(torch_set, seed=seed, batch_size=batch_size, workers=workers)


def deterministic_loader(dataset: Dataset, *, seed: int, batch_size: int, workers: int) -> DataLoader:
    """A DataLoader over a leanvision torch dataset (items `(image, target, index)`): order
    from `EpochSampler`, targets collated as a list, persistent workers (the dataset keeps
    its epoch in shared memory, so `set_epoch` reaches them)."""
    from leanvision.data.torch_dataset import collate

    return DataLoader(
        dataset, batch_size=batch_size, sampler=EpochSampler(len(dataset), seed=seed),
        num_workers=workers, collate_fn=collate, drop_last=False, persistent_workers=workers > 0,
        # Its own generator: worker seeds then never draw from (or shift) the global torch RNG.
        generator=torch.Generator().manual_seed(seed),
    )
