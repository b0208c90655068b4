"""Train within a wall-time budget: plan the epochs once, early, then stop when it is spent."""

from __future__ import annotations

import logging
import math
import statistics
import time

from leanvision.training.loop import HookBase

logger = logging.getLogger(__name__)


class TimeBudgetHook(HookBase):
    """Plans `trainer.max_epochs` to fill the budget, so the cosine schedule ends at its final
    LR at the end of the budget, and stops after the step at which the budget runs out.

    The plan is made once, after the first epoch, from its steady part: the time from the end
    of its first step to the end of the epoch (evaluation and checkpoint included) plus one
    median step. The first step and the wait for the first batch pay one-off start-up costs
    (loader workers, kernel selection), which a plan from the whole first epoch took for
    every epoch: a 25-minute run stopped at 21 minutes.

    The plan then holds while the rate measured since it was made lands the end within the
    budget (up to half an epoch over, or an epoch and a half under), so that two runs on a
    quiet machine get the same schedule: refitting to every epoch's time made the same seed
    end at 0.27 or 0.51 mAP@0.5 on a real set. When the machine gets slower or faster (other
    work starts or ends), the plan is refitted from that rate: the cosine is compressed or
    stretched there rather than cut off by the budget.

    Args:
        seconds: the budget, wall time from the start of training.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._start = 0.0
        self._first_step_end: float | None = None
        self._step_seconds: list[float] = []
        self._window = (0.0, 0)  # (time, epoch) of the last (re)plan: the rate is measured since
        self._recipe_epochs = 0  # max_epochs the recipe asked for: a plan never goes beyond it
        self.planned: int | None = None

    def before_train(self) -> None:
        self._start = time.monotonic()
        self._recipe_epochs = self.trainer.max_epochs

    def _elapsed(self) -> float:
        return time.monotonic() - self._start

    def _fit(self, elapsed: float, per_epoch: float) -> int:
        trainer = self.trainer
        more = max(1, math.floor((self.seconds - elapsed) / max(per_epoch, 1e-9)))
        return min(self._recipe_epochs, trainer.epoch + more)

    def _set(self, epochs: int, per_epoch: float, why: str) -> None:
        trainer = self.trainer
        if epochs != trainer.max_epochs:
            logger.info("time budget: %s: %.0f s per epoch, %d of %d epochs fit in %.1f min",
                        why, per_epoch, epochs, self._recipe_epochs, self.seconds / 60)
        self.planned = trainer.max_epochs = epochs

    def before_epoch(self) -> None:
        trainer = self.trainer
        now = time.monotonic()
        done = trainer.epoch - trainer.start_epoch
        if done < 1:
            return
        elapsed = now - self._start
        if self.planned is None:
            steady = now - (self._first_step_end or self._start)
            per_epoch = steady + (statistics.median(self._step_seconds) if self._step_seconds else 0.0)
            self._set(self._fit(elapsed, per_epoch), per_epoch, "planned")
            self._window = (now, trainer.epoch)
            return
        since, first = self._window
        per_epoch = (now - since) / max(1, trainer.epoch - first)  # the rate since the last (re)plan
        overrun = elapsed + (trainer.max_epochs - trainer.epoch) * per_epoch - self.seconds
        # Asymmetric: an overrun has the last epoch cut off; ending early only leaves part of an
        # epoch unused (the plan rounds down, so up to one epoch is expected).
        if overrun > 0.5 * per_epoch or -overrun > 1.5 * per_epoch:
            self._set(self._fit(elapsed, per_epoch), per_epoch, "the machine's speed changed")
            self._window = (now, trainer.epoch)

    def after_step(self) -> None:
        trainer = self.trainer
        if self._first_step_end is None:
            self._first_step_end = time.monotonic()
        elif self.planned is None:
            self._step_seconds.append(trainer.step_seconds)
        if self._elapsed() > self.seconds and not trainer.stop_requested:
            trainer.stop_requested = True
            trainer.max_epochs = trainer.epoch + 1  # the run ends with this epoch
            logger.info("time budget of %.1f min spent at step %d: stopping", self.seconds / 60, trainer.iteration)
