"""Train within a wall-time budget: fit the schedule to it, then stop when it is spent."""

from __future__ import annotations

import logging
import math
import time

from leanvision.training.loop import HookBase

logger = logging.getLogger(__name__)


class TimeBudgetHook(HookBase):
    """Fits `trainer.max_epochs` to the budget, so the cosine schedule still ends at its final
    LR, and stops after the step at which the budget runs out.

    The first fit follows the first epoch (evaluation and checkpoint included); from the
    second on, each epoch refits from the epochs after the first alone, since the first
    also paid the start-up (loader workers, first batches): fitted to it, a 20-minute S0 run
    planned 17 epochs at 68 s that then took 58 s, and ended at 16.4 minutes. Refits move the
    cosine's end by an epoch or two at most: the LR barely jumps.

    Timing decides the epoch count, so a run with a budget is not reproducible.

    Args:
        seconds: the budget, wall time from the start of training.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = 0.0
        self._first_epoch = 0.0  # seconds the first epoch took
        self._planned = 0  # max_epochs the recipe asked for: a refit never goes beyond it

    def before_train(self) -> None:
        self._start = time.monotonic()
        self._planned = self.trainer.max_epochs

    def _elapsed(self) -> float:
        return time.monotonic() - self._start

    def before_epoch(self) -> None:
        trainer = self.trainer
        done = trainer.epoch - trainer.start_epoch
        if done < 1:
            return
        elapsed = self._elapsed()
        if done == 1:
            self._first_epoch = per_epoch = elapsed
        else:
            per_epoch = (elapsed - self._first_epoch) / (done - 1)
        more = max(1, math.floor((self.seconds - elapsed) / per_epoch))
        fitted = min(self._planned, trainer.epoch + more)
        if fitted != trainer.max_epochs:
            logger.info("time budget: %.0f s per epoch, %d of %d epochs fit in %.1f min",
                        per_epoch, fitted, self._planned, self.seconds / 60)
            trainer.max_epochs = fitted

    def after_step(self) -> None:
        trainer = self.trainer
        if self._elapsed() > self.seconds and not trainer.stop_requested:
            trainer.stop_requested = True
            trainer.max_epochs = trainer.epoch + 1  # the run ends with this epoch
            logger.info("time budget of %.1f min spent at step %d: stopping", self.seconds / 60, trainer.iteration)
