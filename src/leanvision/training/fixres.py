"""FixRes (Touvron et al., 2019; S1's last stage): a classifier trained at one resolution
sees objects larger at test time when evaluated at a higher one; fine-tuning only the
classifier at the test resolution, with the body's BatchNorm statistics re-estimated there,
closes the gap.

`fixres(run_dir, size=280)`:

1. top-1 of the run's best.pt at its training input (e.g. 224) and at `size`, before;
2. a short training run from best.pt at `size` with the body frozen
   (`ClassifierOptions.trainable="head"`; its BatchNorm layers stay in training mode, so
   their statistics follow the new resolution), test-like augmentation (the card's resize
   and a horizontal flip only), no EMA, the run's own sampler and loss;
3. top-1 at `size` after, written with the three figures to `<out>/fixres.json`.

The fine-tuned run is an ordinary run directory (best.pt by val top-1, metrics.csv,
config.yaml), so `val`, `export` and `quantize` take it as they take any run. Written here,
not taken from a library: timm and torchvision have no FixRes stage (the authors' code is a
GPU training script).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core import ConfigError, ModelCard, Task
from leanvision.core.io import atomic_write_text
from leanvision.training.config import TrainConfig

logger = logging.getLogger(__name__)

RESULT_FILE = "fixres.json"
# The test-like augmentation of the fine-tuning stage: the card's resize places the image,
# a mirror is the only change (FixRes fine-tunes with test-time preprocessing).
FINETUNE_STEPS = ({"op": "random_flip", "horizontal": 0.5},)


@dataclass(frozen=True)
class FixResResult:
    """Top-1 (fractions) before and after the FixRes stage.

    Attributes:
        run_dir: the fine-tuned run (best.pt at the test resolution).
        train_size, test_size: (height, width) of the training and the test input.
        top1_train_size: the original best.pt at its training input.
        top1_test_size_before: the same model at the test input, before fine-tuning.
        top1_test_size_after: the fine-tuned model at the test input.
        tail_top1: tail-class top-1 for the same three cases (None without class counts).
    """

    run_dir: Path
    train_size: tuple[int, int]
    test_size: tuple[int, int]
    top1_train_size: float
    top1_test_size_before: float
    top1_test_size_after: float
    tail_top1: tuple[float | None, float | None, float | None]

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "train_size": list(self.train_size), "test_size": list(self.test_size),
                "top1_train_size": self.top1_train_size, "top1_test_size_before": self.top1_test_size_before,
                "top1_test_size_after": self.top1_test_size_after, "tail_top1": list(self.tail_top1)}


def finetune_config(config: TrainConfig, best: Path, size: tuple[int, int], *, epochs: int, lr: float,
                    output: Path) -> TrainConfig:
    """A run's config turned into its FixRes stage: from `best` at `size`, body frozen,
    test-like augmentation, no warm-up, no EMA, no time budget, into `output`."""
    return config.replace(
        data=dataclasses.replace(config.data, input_size=size),
        model=dataclasses.replace(config.model, weights=str(best), weights_backbone=None,
                                  overrides={**config.model.overrides, "trainable": "head"}),
        schedule=dataclasses.replace(config.schedule, epochs=epochs, warmup_iters=0),
        optimizer=dataclasses.replace(config.optimizer, lr=lr),
        augment=dataclasses.replace(config.augment, steps=tuple(dict(step) for step in FINETUNE_STEPS)),
        ema=dataclasses.replace(config.ema, enabled=False),
        time_budget_minutes=None, output=output)


def _top1(model: Any, card: ModelCard, val: Any, size: tuple[int, int], batch_size: int) -> tuple[float, float | None]:
    """(top-1, tail top-1) of `model` on `val` at input `size`."""
    from leanvision.evaluation.classification import classification_metrics
    from leanvision.training.classify_eval import predict_logits

    spec = dataclasses.replace(card.input, height=size[0], width=size[1])
    predictions = predict_logits(model, val, spec, batch_size=batch_size)
    counts = np.asarray(card.class_counts) if card.class_counts else None
    metrics = classification_metrics(predictions.logits, predictions.labels, train_counts=counts)
    tail = metrics.group_top1[2] if metrics.group_top1 is not None else None
    return metrics.top1, (None if tail is None or np.isnan(tail) else float(tail))


def fixres(
    run_dir: str | os.PathLike[str],
    *,
    size: int | tuple[int, int] = 280,
    epochs: int = 2,
    lr: float = 0.002,
    output: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    batch_size: int = 32,
    progress: bool = True,
) -> FixResResult:
    """Run the FixRes stage on a classification run (see the module docstring).

    Args:
        run_dir: a finished classification run (config.yaml and best.pt) or its best.pt.
        size: the test resolution: one side (square) or (height, width).
        epochs, lr: of the fine-tuning (cosine from `lr`, no warm-up).
        output: the fine-tuned run's directory (default `<run_dir>/fixres<size>`).
        overrides: more `key=value` items for the fine-tuning config.
        batch_size: images per evaluation call.

    Raises:
        ConfigError: not a classification run, no val set in its config, a bad size.
        ModelError: a missing or corrupt checkpoint.
    """
    from leanvision.data.labelled import read_classification_set
    from leanvision.training.checkpoint import model_from_checkpoint, resolve_checkpoint
    from leanvision.training.recipe import load_config
    from leanvision.training.run import CONFIG_FILE, train

    best = resolve_checkpoint(run_dir)
    run = best.parent
    test_size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(test_size) < 32:
        raise ConfigError(f"the FixRes test size must be at least 32 px, got {test_size[0]}x{test_size[1]}")
    if epochs < 1:
        raise ConfigError(f"the FixRes stage needs at least 1 epoch, got {epochs}")
    if not (run / CONFIG_FILE).is_file():
        raise ConfigError(f"no {CONFIG_FILE} beside the checkpoint: FixRes fine-tunes a run directory", path=run)
    model, card = model_from_checkpoint(best)
    if card.task is not Task.CLASSIFY:
        raise ConfigError(f"FixRes is a classifier stage; this is a {card.task.value} model", path=best)
    config = load_config(run / CONFIG_FILE)
    if config.data.val is None:
        raise ConfigError("the run has no val set (data.val): FixRes needs one to measure", path=run / CONFIG_FILE)
    out = Path(output) if output is not None else run / f"fixres{test_size[0]}"
    stage = load_config(None, overrides, base=finetune_config(config, best, test_size, epochs=epochs, lr=lr,
                                                               output=out))
    val = read_classification_set(Path(config.data.val), card.class_names).dataset
    train_size = (card.input.height, card.input.width)
    top1_train, tail_train = _top1(model, card, val, train_size, batch_size)
    top1_before, tail_before = _top1(model, card, val, test_size, batch_size)
    logger.info("FixRes: top-1 %.4f at %s, %.4f at %s before fine-tuning", top1_train, train_size,
                top1_before, test_size)
    train(stage, progress=progress)
    tuned, tuned_card = model_from_checkpoint(resolve_checkpoint(out))
    top1_after, tail_after = _top1(tuned, tuned_card, val, test_size, batch_size)
    result = FixResResult(out, train_size, test_size, top1_train, top1_before, top1_after,
                          (tail_train, tail_before, tail_after))
    atomic_write_text(out / RESULT_FILE, json.dumps(result.to_dict(), indent=2) + "\n")
    return result
