"""`train(config)`: assemble data, model, optimizer, hooks and the loop, and run it.

The run directory receives `config.yaml` (the resolved recipe), `last.pt`, `best.pt`,
`metrics.csv` and `metrics.jsonl`. `resume=` continues a run from its `last.pt` and ends
bit-identical to an uninterrupted run: the checkpoint restores weights, optimizer, EMA,
loop position and RNG states, and data order and augmentation depend only on
(seed, epoch, index).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leanvision.core import ConfigError, ModelCard, ModelError, Task
from leanvision.core.io import remove_stale_temps
from leanvision.data.formats import Issue
from leanvision.training.checkpoint import (
    BEST,
    LAST,
    load_checkpoint,
    resolve_checkpoint,
    restore_rng,
)
from leanvision.training.config import TrainConfig
from leanvision.training.data import TrainData
from leanvision.training.hooks import (
    AmpHook,
    CheckpointHook,
    EmaHook,
    EvalHook,
    GradClipHook,
    LrScheduleHook,
    MetricsLogHook,
    NonFiniteLossHook,
    ProgressHook,
    TimeBudgetHook,
)
from leanvision.training.hooks.metrics_log import CSV, JSONL
from leanvision.training.hooks.precise_bn import update_bn_stats
from leanvision.training.loop import Batch, HookBase, Trainer, normalize
from leanvision.training.optim import build_optimizer
from leanvision.training.recipe import load_config
from leanvision.training.tasks import TaskAdapter, adapter_for, data_task, recipe_task
from leanvision.training.tasks.base import check_sampler

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
RUN_FILES = (CONFIG_FILE, LAST, BEST, JSONL, CSV)  # what a run writes (each atomically)

ModelFactory = Callable[[int], nn.Module]


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        run_dir: where its files are.
        epochs: epochs completed (in total, resumed runs included).
        best: best value of `metric` on the val set (None without a val set).
        best_epoch: the epoch `best.pt` holds (0 if none).
        metric: the figure that picked `best.pt`: "fitness" (detection: 0.1 mAP@0.5 + 0.9 mAP),
            "mae" (counting).
        last_metrics: the last evaluation's figures.
        best_metrics: at `best_epoch`, the figures the card keeps and `metric`.
        skipped: images and labels left out of the data, with the reason.
    """

    run_dir: Path
    epochs: int
    best: float | None
    best_epoch: int
    metric: str = "fitness"
    last_metrics: dict[str, float] = field(default_factory=dict)
    skipped: list[Issue] = field(default_factory=list)
    best_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def best_map50(self) -> float | None:
        """Val mAP@0.5 of `best.pt` in a detection run (None for other tasks or without a val set)."""
        return self.best_metrics.get("map50")


@contextlib.contextmanager
def seeded(seed: int, *, deterministic: bool, threads: int) -> Iterator[None]:
    """Seed every RNG, ask for deterministic kernels and set threads; restore them after."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.get_num_threads())
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    # warn_only: CPU kernels without a deterministic variant warn instead of failing the run.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.set_num_threads(previous[2])


def registry_factory(config: TrainConfig) -> ModelFactory:
    """`num_classes -> model` from the registry, with the recipe's weights and overrides."""
    from leanvision.models import create_model

    options = config.model

    def build(num_classes: int) -> nn.Module:
        return create_model(options.name, num_classes=num_classes, weights=options.weights,
                            weights_backbone=options.weights_backbone, **options.overrides)

    return build


def _precise_bn(loader: Iterable[Batch], card: ModelCard, num_batches: int) -> Callable[[nn.Module], None] | None:
    if num_batches <= 0:
        return None
    mean, std = torch.tensor(card.input.mean), torch.tensor(card.input.std)

    def prepare(model: nn.Module) -> None:
        update_bn_stats(model, loader, num_batches=num_batches, prepare=lambda x: normalize(x, mean, std))

    return prepare


def build_hooks(
    config: TrainConfig, model: nn.Module, card: ModelCard, data: TrainData, run_dir: Path,
    *, loader: Iterable[Batch], adapter: TaskAdapter, progress: bool = True,
) -> list[HookBase]:
    """The hooks of a run, in calling order (the order matters at each point:
    NaN check before clipping; evaluation, then the log row, then the checkpoint).
    The adapter says how to evaluate and which figure picks `best.pt`."""
    schedule, amp = config.schedule, AmpHook(config.amp)
    hooks: list[HookBase] = [amp, LrScheduleHook(base_lr=config.optimizer.lr, final_lr=schedule.final_lr,
                                                 warmup_iters=schedule.warmup_iters, warmup_factor=schedule.warmup_factor)]
    hooks.append(NonFiniteLossHook(run_dir / LAST))
    if config.optimizer.clip_grad_norm is not None:
        hooks.append(GradClipHook(config.optimizer.clip_grad_norm))
    if config.ema.enabled:
        hooks.append(EmaHook(model, decay=config.ema.decay, warmup_steps=config.ema.warmup_steps))
    if config.time_budget_minutes is not None:
        hooks.append(TimeBudgetHook(config.time_budget_minutes * 60))
    if data.val is not None:
        hooks.append(EvalHook(adapter.evaluator(data.val, card, batch_size=config.eval.batch_size), period=config.eval.period,
                              prepare=_precise_bn(loader, card, config.eval.precise_bn_batches), shown=adapter.shown))
    hooks.append(MetricsLogHook(run_dir, batch_size=config.loader.batch_size))
    hooks.append(CheckpointHook(run_dir, card=card, config=config.to_dict(), period=config.checkpoint.period,
                                metric=adapter.metric, higher_is_better=adapter.higher_is_better,
                                card_metrics=adapter.card_metrics,
                                provenance=lambda: {"amp": amp.decision, "skipped_images": str(len(data.skipped))}))
    if progress:
        hooks.append(ProgressHook())
    return hooks


def _check_run_dir(run_dir: Path, resuming: bool) -> None:
    if not resuming and (run_dir / LAST).exists():
        raise ConfigError(
            "the output directory already holds a run (last.pt): resume it with --resume, "
            "or choose another output=...", path=run_dir,
        )


def _resume_state(trainer: Trainer, checkpoint: dict[str, Any], path: Path, epochs: int) -> None:
    """Restore a run's state into `trainer`; `epochs` wins if it differs from the checkpoint's
    recipe (extending a run), else the checkpoint's run length (a time budget may have cut it)."""
    try:
        trainer.model.load_state_dict(checkpoint["model"])
        trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        trainer.load_state_dict(checkpoint["trainer"])
        restore_rng(checkpoint["rng"])
        if epochs != checkpoint["config"]["schedule"]["epochs"]:
            trainer.max_epochs = epochs
    except (KeyError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot resume from this checkpoint: {first[:200]}", path=path) from None


def resume_config(
    path: str | os.PathLike[str], overrides: Sequence[str] = (), *, recipe: TrainConfig | None = None
) -> TrainConfig:
    """The config to continue a run with; its output is the checkpoint's run directory.

    Args:
        path: the run directory or checkpoint to resume.
        overrides: `key=value` items applied on top.
        recipe: a recipe given again on the command line; used instead of the checkpoint's
            own (a warning names the groups where they differ).

    Anything that changes data, model or schedule makes the resumed run differ from an
    uninterrupted one; raising `schedule.epochs` to extend a finished run is the usual use.
    """
    path = resolve_checkpoint(path)
    checkpoint = load_checkpoint(path)
    try:
        saved = TrainConfig.from_dict(checkpoint["config"])
    except (KeyError, ConfigError) as exc:
        raise ModelError(f"checkpoint has no valid training config: {exc}", path=path) from None
    config = load_config(None, overrides, base=recipe or saved).replace(output=path.parent)
    changed = [k for k, v in config.to_dict().items() if k != "output" and v != saved.to_dict()[k]]
    if changed:
        logger.warning("resuming with a recipe that differs from the checkpoint's in: %s", ", ".join(changed))
    return config


def train(
    config: TrainConfig,
    *,
    resume: str | os.PathLike[str] | None = None,
    model_factory: ModelFactory | None = None,
    extra_hooks: Sequence[HookBase] = (),
    progress: bool = True,
) -> TrainResult:
    """Train a model as `config` says; write the run into `config.output`.

    The task (detection, counting) is the registered model's; with a `model_factory` (or a
    model name the registry does not know), that of the training set's format.

    Args:
        config: the recipe (see `load_config` / `resume_config`).
        resume: a checkpoint or run directory to continue from.
        model_factory: `num_classes -> model`; default builds `config.model` from the registry.
        extra_hooks: more hooks, called after the built-in ones.
        progress: draw a progress bar (on terminals).

    Raises:
        DataError: missing or empty data, no positive boxes (no points), class lists that
            differ, a dataset of another task than the model's.
        ConfigError: the output directory already holds a run and `resume` is None; the
            model built is of another task than the recipe's.
        ModelError: the checkpoint to resume is missing, corrupt or does not fit.
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
    """
    run_dir = Path(config.output)
    checkpoint_path = resolve_checkpoint(resume) if resume is not None else None
    checkpoint = load_checkpoint(checkpoint_path) if checkpoint_path is not None else None
    _check_run_dir(run_dir, checkpoint is not None)
    # A caller's factory may build any model: the data says the task, `_check_task` the rest.
    registered = None if model_factory is not None else recipe_task(config.model.name)
    adapter = adapter_for(registered or data_task(config.data.train))
    with seeded(config.seed, deterministic=config.deterministic, threads=config.loader.threads):
        data = adapter.load_data(config.data, workers=max(1, config.loader.workers))
        fit_to_data = getattr(adapter, "fit_to_data", None)  # optional: detection fits its windows
        if fit_to_data is not None:
            config = fit_to_data(config, data)
        model = (model_factory or registry_factory(config))(len(data.classes))
        fitted = {} if model_factory is not None else adapter.model_overrides(model, config.model, data, config.data,
                                                                              config.augment)
        if fitted:  # e.g. anchors fitted to the boxes: rebuilt, and recorded in the run's config
            config = config.replace(model=dataclasses.replace(config.model,
                                                              overrides={**config.model.overrides, **fitted}))
            model = registry_factory(config)(len(data.classes))
        _check_task(model, adapter.task, config.model.name)
        card = model.card(class_names=data.classes, input_size=config.data.input_size,
                          resize=config.data.resize, scale=config.data.scale)
        if data.class_counts:
            card = card.replace(class_counts=data.class_counts)
        check_sampler(adapter, config.loader.sampler)
        loader = adapter.train_loader(data, card, model, augment=config.augment, loader=config.loader,
                                      seed=config.seed)
        trainer = Trainer(model, loader, build_optimizer(model, config.optimizer), mean=card.input.mean,
                          std=card.input.std, channels_last=config.channels_last)
        hooks = build_hooks(config, model, card, data, run_dir, loader=loader, adapter=adapter, progress=progress)
        trainer.register_hooks([*hooks, *extra_hooks])
        trainer.max_epochs = config.schedule.epochs
        if checkpoint is not None:
            _resume_state(trainer, checkpoint, checkpoint_path, config.schedule.epochs)
            logger.info("resuming %s at epoch %d", checkpoint_path, trainer.epoch + 1)
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:  # what a run killed while writing them left (kill -9 cannot clean up)
            remove_stale_temps(run_dir / name)
        config.to_yaml(run_dir / CONFIG_FILE)
        trainer.train(trainer.epoch, trainer.max_epochs)
    return _result(trainer, run_dir, data)


def _check_task(model: nn.Module, task: Task, name: str) -> None:
    """ConfigError when the model built is not of the recipe's task."""
    model_task = getattr(model, "task", None)
    if model_task is not None and Task(model_task) is not task:
        raise ConfigError(f"model '{name}' is a {Task(model_task).value} model, but the recipe trains {task.value}")


def _result(trainer: Trainer, run_dir: Path, data: TrainData) -> TrainResult:
    best = next(h for h in trainer.hooks if isinstance(h, CheckpointHook))
    return TrainResult(run_dir, trainer.epoch, best.best, best.best_epoch, best.metric, dict(trainer.eval_metrics),
                       list(data.skipped), dict(best.best_metrics))
