"""Fixtures for training tests: a tiny squares dataset and a tiny-model recipe."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from leanvision.core import Detections
from leanvision.data.formats import DetectionSet, Format, ImageRecord, write_detection
from leanvision.training.config import (
    DataOptions,
    EmaOptions,
    LoaderOptions,
    ModelOptions,
    OptimizerOptions,
    ScheduleOptions,
    TrainConfig,
)
from tests.training.tiny_detector import TinyGridDetector, squares_image

SIZE = 64


def write_squares_set(root: Path, *, images: int, seed: int, negatives: int = 1, classes=("square",)) -> Path:
    """A COCO set of `images` squares images (the last `negatives` have no square)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(images):
        count = 0 if i >= images - negatives else 1
        image, boxes = squares_image(rng, SIZE, count)
        name = f"img_{i:03d}.png"
        (root / "images").mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / "images" / name), image)
        records.append(ImageRecord(name, SIZE, SIZE, Detections.from_boxes(boxes, [0] * len(boxes)), i + 1))
    write_detection(DetectionSet(tuple(classes), records, root / "images"), root, Format.COCO, copy_images=False)
    return root


@pytest.fixture(scope="session")
def squares_data(tmp_path_factory) -> Path:
    """train/ (12 images, 2 negatives) and val/ (6 images, 1 negative) COCO sets."""
    root = tmp_path_factory.mktemp("squares")
    write_squares_set(root / "train", images=12, seed=1, negatives=2)
    write_squares_set(root / "val", images=6, seed=2, negatives=1)
    return root


def tiny_config(data: Path, output: Path, *, epochs: int = 4, **changes) -> TrainConfig:
    """A recipe for the tiny model: 64 px, batch 4, one thread, no workers."""
    config = TrainConfig(
        data=DataOptions(train=data / "train", val=data / "val", input_size=(SIZE, SIZE)),
        model=ModelOptions(name="tiny_grid"),
        optimizer=OptimizerOptions(lr=0.05, clip_grad_norm=10.0),
        schedule=ScheduleOptions(epochs=epochs, warmup_iters=3, final_lr=1e-4),
        ema=EmaOptions(decay=0.95, warmup_steps=5),
        loader=LoaderOptions(batch_size=4, workers=0, threads=1),
        output=output,
    )
    return config.replace(**changes)


def tiny_factory(num_classes: int) -> TinyGridDetector:
    return TinyGridDetector(num_classes)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test: the machine is shared, and tiny models gain nothing from more."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
