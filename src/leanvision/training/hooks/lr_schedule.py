"""Per-iteration learning rate: linear warm-up, then cosine decay (S0: 1e-2 -> 1e-5).

The LR is a pure function of the global iteration and the run length, so resuming needs no
scheduler object: the iteration in the checkpoint fixes it.
"""

from __future__ import annotations

import math

from leanvision.training.loop import HookBase


def warmup_cosine_lr(
    iteration: int,
    total: int,
    *,
    base_lr: float,
    final_lr: float,
    warmup_iters: int,
    warmup_factor: float,
) -> float:
    """The LR at `iteration` (0-based) of a `total`-iteration run.

    Warm-up (Goyal et al. 2017, "Accurate, Large Minibatch SGD") ramps linearly from
    `base_lr * warmup_factor` to `base_lr`; then SGDR's cosine (Loshchilov & Hutter 2017,
    no restarts) falls from `base_lr` to `final_lr` at the last iteration. The warm-up is
    capped at a third of the run so short runs still decay.
    """
    warmup = min(warmup_iters, total // 3)
    if iteration < warmup:
        alpha = iteration / warmup
        return base_lr * (warmup_factor * (1 - alpha) + alpha)
    span = max(1, total - 1 - warmup)
    progress = min(1.0, (iteration - warmup) / span)
    return final_lr + 0.5 * (base_lr - final_lr) * (1 + math.cos(math.pi * progress))


class LrScheduleHook(HookBase):
    """Sets every parameter group's LR before each step; `trainer.lr` holds the value.

    The run length is read each step (`max_epochs * steps_per_epoch`), so a hook that
    shortens the run (time budget) compresses the cosine to end at `final_lr`.
    """

    def __init__(self, *, base_lr: float, final_lr: float, warmup_iters: int, warmup_factor: float) -> None:
        self.base_lr = base_lr
        self.final_lr = final_lr
        self.warmup_iters = warmup_iters
        self.warmup_factor = warmup_factor

    def before_step(self) -> None:
        trainer = self.trainer
        lr = warmup_cosine_lr(
            trainer.iteration, trainer.max_epochs * trainer.steps_per_epoch,
            base_lr=self.base_lr, final_lr=self.final_lr,
            warmup_iters=self.warmup_iters, warmup_factor=self.warmup_factor,
        )
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr
        trainer.lr = lr
