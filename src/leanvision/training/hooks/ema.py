"""Model EMA: an exponential moving average of the weights, used for evaluation.

The decay warms up as `decay * (1 - exp(-updates / warmup_steps))` (YOLOv5's ModelEMA), so
the average follows the fast early changes and smooths the late ones. Buffers that are not
floating point (BatchNorm's `num_batches_tracked`) are copied.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from leanvision.training.loop import HookBase


class ModelEMA:
    """An EMA copy of a model (kept in eval mode, no gradients).

    Args:
        model: the model being trained; copied at construction.
        decay: asymptotic decay per update.
        warmup_steps: time constant of the decay warm-up, in updates.
    """

    def __init__(self, model: nn.Module, *, decay: float, warmup_steps: int) -> None:
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = decay
        self.warmup_steps = max(1, warmup_steps)
        self.updates = 0

    def current_decay(self) -> float:
        return self.decay * (1 - math.exp(-self.updates / self.warmup_steps))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend `model`'s current weights into the average."""
        self.updates += 1
        decay = self.current_decay()
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(decay).add_(source[name].detach(), alpha=1 - decay)
            else:
                value.copy_(source[name])

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


class EmaHook(HookBase):
    """Updates the EMA after every step and exposes it as `trainer.ema`."""

    def __init__(self, model: nn.Module, *, decay: float, warmup_steps: int) -> None:
        self.ema = ModelEMA(model, decay=decay, warmup_steps=warmup_steps)

    def before_train(self) -> None:
        self.trainer.ema = self.ema

    def after_step(self) -> None:
        self.ema.update(self.trainer.model)

    def state_dict(self) -> dict[str, Any]:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state)
