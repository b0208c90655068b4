"""Fixtures for the classification tests: tiny coloured-package sets, a tiny timm classifier and its exports."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from leanvision.training.config import (
    AmpMode,
    DataOptions,
    EmaOptions,
    EvalOptions,
    LoaderOptions,
    ModelOptions,
    OptimizerKind,
    OptimizerOptions,
    ScheduleOptions,
    TrainConfig,
)
from tests.counting.conftest import one_thread  # noqa: F401 - autouse: one torch thread for the tiny models

# Four classes told apart by colour and by where the label band sits; elongated images
# (tall for two classes, wide for two) so that resize modes matter.
CLASSES = ("blue_tall", "green_wide", "red_tall", "yellow_wide")
_COLOURS = {"blue_tall": (40, 60, 200), "green_wide": (40, 180, 60), "red_tall": (200, 40, 40),
            "yellow_wide": (220, 200, 40)}
TINY_ARCH = "test_efficientnet"  # timm's 0.1 M-parameter test model: fast on one thread
INPUT = (48, 48)


def package(rng: np.random.Generator, name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a noisy background with one package of the class's colour."""
    tall = name.endswith("tall")
    long_side, short_side = int(rng.integers(56, 80)), int(rng.integers(24, 36))
    height, width = (long_side, short_side) if tall else (short_side, long_side)
    image = rng.integers(60, 140, (height, width, 3)).astype(np.uint8)
    x0, y0 = int(rng.integers(0, 4)), int(rng.integers(0, 4))
    colour = np.clip(np.array(_COLOURS[name]) + rng.integers(-20, 21, 3), 0, 255)
    image[y0:height - 3, x0:width - 3] = colour
    band = height // 3 if tall else 2 * height // 3
    image[band:band + 4, x0:width - 3] = 240
    return image


def write_set(root: Path, per_class: int | dict[str, int], *, seed: int, classes: tuple[str, ...] = CLASSES) -> Path:
    """An ImageFolder set under `root`: `per_class` PNGs of each class (a dict: per class)."""
    rng = np.random.default_rng(seed)
    for name in classes:
        count = per_class[name] if isinstance(per_class, dict) else per_class
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            cv2.imwrite(str(root / name / f"{name}_{i:02d}.png"), cv2.cvtColor(package(rng, name), cv2.COLOR_RGB2BGR))
    return root


@pytest.fixture(scope="session")
def packages(tmp_path_factory) -> Path:
    """train/ (6 images a class) and val/ (3 a class)."""
    root = tmp_path_factory.mktemp("packages")
    write_set(root / "train", 6, seed=1)
    write_set(root / "val", 3, seed=2)
    return root


def tiny_config(train_dir: Path, val_dir: Path | None, output: Path, *, epochs: int, **changes) -> TrainConfig:
    """timm's test_efficientnet with a linear head at 48x48 letterbox, AdamW, one thread."""
    config = TrainConfig(
        data=DataOptions(train=train_dir, val=val_dir, input_size=INPUT, resize="letterbox"),
        model=ModelOptions(name="timm_classifier", overrides={"arch": TINY_ARCH}),
        optimizer=OptimizerOptions(kind=OptimizerKind.ADAMW, lr=3e-3, weight_decay=0.0, clip_grad_norm=None),
        schedule=ScheduleOptions(epochs=epochs, warmup_iters=3, final_lr=1e-4),
        ema=EmaOptions(enabled=False),
        amp=AmpMode.OFF,
        eval=EvalOptions(period=epochs, batch_size=8),
        loader=LoaderOptions(batch_size=8, workers=0, threads=1),
        output=output,
    )
    return config.replace(**changes)


@pytest.fixture(scope="session")
def trained_run(packages, tmp_path_factory) -> Path:
    """A run of the tiny classifier on the training set (30 epochs), evaluated on it."""
    from leanvision.training import train

    output = tmp_path_factory.mktemp("classify_run") / "run"
    train(tiny_config(packages / "train", packages / "train", output, epochs=30), progress=False)
    return output


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory) -> Path:
    """The trained run exported to ONNX (parity-checked on ONNX Runtime and OpenVINO)."""
    from leanvision.export import export_model

    return export_model(trained_run, format="onnx", out=tmp_path_factory.mktemp("classify_export") / "onnx").out
