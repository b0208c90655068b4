"""Stop at the first NaN or infinite loss, before the optimizer applies the step."""

from __future__ import annotations

import math
import os

from leanvision.training.loop import HookBase, NonFiniteLossError


class NonFiniteLossHook(HookBase):
    """Raises `NonFiniteLossError` naming the step when the total loss is not finite.

    It runs in `after_backward`, so the bad gradients never reach the weights; checkpoints
    are written only at the end of an epoch, so the last one on disk is a good state.

    Args:
        last_checkpoint: the path to name in the message as the state to resume from.
    """

    def __init__(self, last_checkpoint: str | os.PathLike[str] | None = None) -> None:
        self.last_checkpoint = last_checkpoint

    def after_backward(self) -> None:
        trainer = self.trainer
        total = trainer.losses["total"]
        if math.isfinite(total):
            return
        parts = ", ".join(f"{k} {v:.4g}" for k, v in trainer.losses.items() if k != "total")
        if self.last_checkpoint is not None and os.path.exists(self.last_checkpoint):
            kept = f"; the last good checkpoint is kept: {self.last_checkpoint}"
        else:
            kept = "; no checkpoint had been written yet"
        raise NonFiniteLossError(
            f"loss is {total} at step {trainer.iteration + 1} (epoch {trainer.epoch + 1}; {parts}); "
            f"training stopped{kept}"
        )
