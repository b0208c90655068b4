"""Validation at epoch ends: `trainer.eval_metrics` for the checkpoint and the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from torch import nn

from leanvision.training.loop import HookBase

logger = logging.getLogger(__name__)


class EvalHook(HookBase):
    """Evaluates `trainer.model_for_eval` (the EMA if kept) every `period` epochs and last.

    Args:
        evaluate: model -> flat dict of figures (e.g. map, map50, map75, ar100; mae, rmse, nae).
        period: epochs between evaluations; 0 evaluates only after the last epoch.
        prepare: called with the model before each evaluation (e.g. precise BatchNorm
            statistics, `hooks.precise_bn`).
        shown: the figures written to the log after each evaluation.
    """

    def __init__(
        self,
        evaluate: Callable[[nn.Module], dict[str, float]],
        *,
        period: int = 1,
        prepare: Callable[[nn.Module], None] | None = None,
        shown: Sequence[str] = ("map50", "map", "ar100"),
    ) -> None:
        self.evaluate = evaluate
        self.period = period
        self.prepare = prepare
        self.shown = tuple(shown)

    def _due(self) -> bool:
        trainer = self.trainer
        done = trainer.epoch + 1
        final = done >= trainer.max_epochs or trainer.stop_requested
        return final or (self.period > 0 and done % self.period == 0)

    def after_epoch(self) -> None:
        if not self._due():
            return
        trainer = self.trainer
        model = trainer.model_for_eval
        was_training = model.training
        start = time.perf_counter()
        try:
            if self.prepare is not None:
                self.prepare(model)
            model.eval()
            metrics = dict(self.evaluate(model))
        finally:
            model.train(was_training)
        metrics["eval_seconds"] = time.perf_counter() - start
        trainer.eval_metrics = {**metrics, "epoch": trainer.epoch + 1}
        shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in self.shown if k in metrics)
        logger.info("epoch %d val: %s", trainer.epoch + 1, shown)
