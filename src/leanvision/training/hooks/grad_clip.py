"""Gradient clipping by global L2 norm, between backward and the optimizer step."""

from __future__ import annotations

import math

import torch

from leanvision.training.loop import HookBase, NonFiniteLossError


class GradClipHook(HookBase):
    """Scales gradients so their global L2 norm is at most `max_norm`.

    `trainer.grad_norm` holds the norm before clipping. A non-finite norm stops training
    before the optimizer applies it (the loss was finite, the gradients overflowed).
    """

    def __init__(self, max_norm: float) -> None:
        self.max_norm = max_norm

    def after_backward(self) -> None:
        trainer = self.trainer
        params = [p for p in trainer.model.parameters() if p.grad is not None]
        norm = float(torch.nn.utils.clip_grad_norm_(params, self.max_norm))
        trainer.grad_norm = norm
        if not math.isfinite(norm):
            raise NonFiniteLossError(
                f"gradient norm is {norm} at step {trainer.iteration + 1} (epoch {trainer.epoch + 1}); "
                "training stopped before applying it"
            )
