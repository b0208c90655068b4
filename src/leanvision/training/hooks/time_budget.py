"""Train within a wall-time budget: fit the schedule to it, then stop when it is spent."""

from __future__ import annotations

import logging
import math
import time

from leanvision.training.loop import HookBase

logger = logging.getLogger(__name__)


class TimeBudgetHook(HookBase):
    """Fits `trainer.max_epochs` to the budget once the first epoch (evaluation and
    checkpoint included) has been timed, so the cosine schedule still ends at its final LR;
    stops after the step at which the budget runs out.

    Timing decides the epoch count, so a run with a budget is not reproducible.

    Args:
        seconds: the budget, wall time from the start of training.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = 0.0

    def before_train(self) -> None:
        self._start = time.monotonic()

    def _elapsed(self) -> float:
        return time.monotonic() - self._start

    def before_epoch(self) -> None:
        trainer = self.trainer
        done = trainer.epoch - trainer.start_epoch
        if done != 1:
            return
        per_epoch = self._elapsed() / done
        more = max(1, math.floor((self.seconds - self._elapsed()) / per_epoch))
        if trainer.epoch + more < trainer.max_epochs:
            logger.info("time budget: %.0f s per epoch, %d of %d epochs fit in %.1f min",
                        per_epoch, trainer.epoch + more, trainer.max_epochs, self.seconds / 60)
            trainer.max_epochs = trainer.epoch + more

    def after_step(self) -> None:
        trainer = self.trainer
        if self._elapsed() > self.seconds and not trainer.stop_requested:
            trainer.stop_requested = True
            trainer.max_epochs = trainer.epoch + 1  # the run ends with this epoch
            logger.info("time budget of %.1f min spent at step %d: stopping", self.seconds / 60, trainer.iteration)
