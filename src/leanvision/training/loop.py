"""A small epoch-based fit loop; everything around the step is a hook.

After detectron2's `engine/train_loop.py`: the trainer owns the model, the batches and the
optimizer, and runs one short `run_step`; checkpointing, EMA, the LR schedule, autocast,
gradient clipping, NaN detection, evaluation, logging and progress are hooks
(`training.hooks`), one concern each. The order hooks are called in::

    hook.before_train()
    for epoch in range(start_epoch, max_epochs):
        hook.before_epoch()
        for batch in loader:
            hook.before_step()
            trainer.run_step(batch)      # forward + loss, backward ...
                hook.after_backward()    # ... gradients ready, optimizer.step() not yet run
            hook.after_step()
            (break if trainer.stop_requested)
        hook.after_epoch()
        (break if trainer.stop_requested)
    hook.after_train()                   # also after an exception (trainer.error is set)

Batches are `(images, targets, indices)`: uint8 (N, 3, H, W) RGB, a list of N target dicts
(detection: `boxes` (M, 4) float32 xyxy input pixels and `labels` (M,) int64; counting:
`density` (1, H/8, W/8) float32, `points`, `count`), and the (N,) dataset indices. The step normalises images with the model card's mean/std, so loaders move uint8.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from leanvision.core import LeanVisionError

logger = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, list[dict[str, torch.Tensor]], torch.Tensor]


class NonFiniteLossError(LeanVisionError):
    """The loss became NaN or infinite; training stopped before the bad step was applied."""


class HookBase:
    """A piece of training behaviour called at fixed points of the loop (see module doc).

    `self.trainer` is a weak proxy to the running `Trainer`, set when the hook is
    registered. `before_step` should take negligible time; work goes in `after_step`.
    A hook with state to checkpoint implements `state_dict` / `load_state_dict`; the
    checkpoint stores it under the hook's class name.
    """

    trainer: Trainer

    def before_train(self) -> None:
        """Once, before the first epoch (after a resume has restored the state)."""

    def after_train(self) -> None:
        """Once, at the end; also when training failed (`trainer.error` is then set)."""

    def before_epoch(self) -> None:
        """Before the first step of `trainer.epoch`."""

    def after_epoch(self) -> None:
        """After the last step of `trainer.epoch` (or the step a stop was requested at)."""

    def before_step(self) -> None:
        """Before step `trainer.iteration` (global, counted from 0 over the whole run)."""

    def after_backward(self) -> None:
        """Gradients are computed, the optimizer has not stepped: inspect or clip them."""

    def after_step(self) -> None:
        """After the optimizer step; `trainer.losses` holds this step's detached losses."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) 0-255 -> float32 (pixel - mean) / std; mean and std are (3,)."""
    return (images.float() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


class Trainer:
    """Runs the epochs and the step; hooks do the rest.

    Args:
        model: a model with `compute_loss(images, targets) -> dict of scalars` (any task).
        loader: an iterable of `Batch`; re-iterated every epoch. If it (or its dataset or
            sampler) has `set_epoch(epoch)`, that is called before each epoch.
        optimizer: the optimizer over the model's parameters.
        mean, std: per-channel normalisation of 0-255 pixels (the model card's InputSpec).
        hooks: called in the order given.
        channels_last: run the step in NHWC memory format (the model is converted here): the
            slim RetinaNet trained at 1.5x the images/s of NCHW on 2 AVX-512 cores, as
            oneDNN's convolutions and the elementwise ops between them prefer it (BENCHMARKS.md).

    Attributes:
        epoch: the current epoch (0-based); after training, the number of epochs run.
        iteration: global step index, 0-based; after a step, the number of steps done.
        max_epochs: epochs to train (a hook may lower it, e.g. to fit a time budget).
        steps_per_epoch: batches per epoch (len(loader)).
        losses: the last step's losses as floats, `total` included.
        step_seconds: wall time of the last step (normalise to optimizer step).
        autocast_dtype: None for fp32, or torch.bfloat16 (set by the AMP hook).
        ema: an EMA of the model, if an EMA hook set one; evaluation prefers it.
        eval_metrics: the last evaluation's figures (set by the evaluation hook).
        stop_requested: set by a hook to end training after the current step.
        error: the exception that ended training, if any.
    """

    def __init__(
        self,
        model: nn.Module,
        loader: Iterable[Batch],
        optimizer: torch.optim.Optimizer,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        hooks: Sequence[HookBase] = (),
        channels_last: bool = False,
    ) -> None:
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(memory_format=self.memory_format)
        self.loader = loader
        self.optimizer = optimizer
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.hooks: list[HookBase] = []
        self.epoch = self.iteration = self.start_epoch = 0
        self.max_epochs = 0
        self.steps_per_epoch = len(loader)  # type: ignore[arg-type]
        self.losses: dict[str, float] = {}
        self.step_seconds = 0.0
        self.autocast_dtype: torch.dtype | None = None
        self.ema: Any = None
        self.eval_metrics: dict[str, float] = {}
        self.stop_requested = False
        self.error: BaseException | None = None
        self.register_hooks(hooks)

    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        for hook in hooks:
            # A proxy, not a reference: trainer and hooks must not keep each other alive.
            hook.trainer = weakref.proxy(self)
            self.hooks.append(hook)

    @property
    def model_for_eval(self) -> nn.Module:
        """The EMA model if there is one, else the trained model."""
        return self.ema.module if self.ema is not None else self.model

    def train(self, start_epoch: int, max_epochs: int) -> None:
        """Train epochs [start_epoch, max_epochs); `iteration` must already match start_epoch."""
        self.start_epoch, self.max_epochs = start_epoch, max_epochs
        self.epoch = start_epoch
        logger.info("training epochs %d-%d, %d steps each", start_epoch + 1, max_epochs, self.steps_per_epoch)
        try:
            self._call("before_train")
            while self.epoch < self.max_epochs and not self.stop_requested:
                self._run_epoch()
                self.epoch += 1
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self._call("after_train")

    def _run_epoch(self) -> None:
        self._set_epoch(self.epoch)
        self.model.train()
        self._call("before_epoch")
        for batch in self.loader:
            self._call("before_step")
            self.run_step(batch)
            self.iteration += 1
            self._call("after_step")
            if self.stop_requested:
                break
        self._call("after_epoch")

    def _set_epoch(self, epoch: int) -> None:
        """Tell the loader, its sampler and its dataset which epoch this is (data order and
        augmentation are functions of (seed, epoch, index), so resume replays them)."""
        for part in (self.loader, getattr(self.loader, "sampler", None), getattr(self.loader, "dataset", None)):
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)

    def _autocast(self) -> contextlib.AbstractContextManager:
        """The step's autocast: none, the model's own (`autocast_parts(dtype)`: a model that
        knows which of its parts bf16 speeds up), else the whole forward."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        parts = getattr(self.model, "autocast_parts", None)
        if parts is not None:
            return parts(self.autocast_dtype)
        return torch.autocast("cpu", dtype=self.autocast_dtype)

    def run_step(self, batch: Batch) -> None:
        """One optimisation step: normalise, loss, backward, hooks, optimizer step."""
        start = time.perf_counter()
        images, targets, _ = batch
        images = normalize(images.contiguous(memory_format=self.memory_format), self.mean, self.std)
        with self._autocast():
            loss_dict = self.model.compute_loss(images, targets)
        # Losses are summed in fp32: a bf16 sum of several terms loses the small ones.
        total = sum(loss.float() for loss in loss_dict.values())
        self.losses = {name: float(loss.detach()) for name, loss in loss_dict.items()}
        self.losses["total"] = float(total.detach())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self._call("after_backward")
        self.optimizer.step()
        self.step_seconds = time.perf_counter() - start

    def _call(self, point: str) -> None:
        for hook in self.hooks:
            getattr(hook, point)()

    def state_dict(self) -> dict[str, Any]:
        """Loop position and hook states, taken at the end of an epoch (in `after_epoch`).

        `epochs_done` counts the current epoch as done; model and optimizer are saved by
        the checkpoint beside this.
        """
        hooks = {type(h).__name__: s for h in self.hooks if (s := h.state_dict())}
        return {"epochs_done": self.epoch + 1, "iteration": self.iteration,
                "max_epochs": self.max_epochs, "hooks": hooks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`; `train(start_epoch=state["epochs_done"], ...)` continues."""
        self.epoch, self.iteration = int(state["epochs_done"]), int(state["iteration"])
        self.max_epochs = int(state["max_epochs"])
        for hook in self.hooks:
            if type(hook).__name__ in state.get("hooks", {}):
                hook.load_state_dict(state["hooks"][type(hook).__name__])
