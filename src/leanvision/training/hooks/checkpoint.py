"""Checkpoints at epoch ends: `last.pt`, and `best.pt` when the validation metric improves
(mAP@0.5 for detection, higher is better; MAE for counting, lower is better).

Both are written atomically (temp file + rename), and only at the end of an epoch, never
after a failed step: when training stops on a NaN loss, the files on disk are the last good
state. `best.pt` is a copy of the `last.pt` of the best epoch, written first: a process
killed between the two leaves `last.pt` at the epoch before, whose resume replays the best
epoch and writes both again. (The other order would leave a `last.pt` that records the new
best epoch beside a `best.pt` of an older one, and no later epoch would fix it.)
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from leanvision.core import ModelCard
from leanvision.core.io import atomic_path
from leanvision.training.checkpoint import BEST, LAST, capture_rng, save_checkpoint
from leanvision.training.loop import HookBase

logger = logging.getLogger(__name__)

METRIC_KEYS = ("map", "map50", "map75", "ar100")  # detection figures the card keeps


class CheckpointHook(HookBase):
    """Writes `last.pt` every `period` epochs and at the end; `best.pt` by `metric`.

    Args:
        run_dir: where the files go.
        card: the model card; each checkpoint carries it with that epoch's metrics.
        config: the resolved training config as plain data, saved for resume.
        period: epochs between `last.pt` writes (the last epoch is always written).
        metric: the `trainer.eval_metrics` key that picks `best.pt`.
        higher_is_better: maximise `metric` (mAP) or minimise it (MAE).
        card_metrics: the evaluation figures each checkpoint's card keeps, as `val_<key>`.
        provenance: called at each save for extra card provenance strings (e.g. the
            autocast decision, known only once training has started).
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        card: ModelCard,
        config: dict[str, Any],
        period: int = 1,
        metric: str = "map50",
        higher_is_better: bool = True,
        card_metrics: Sequence[str] = METRIC_KEYS,
        provenance: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.card = card
        self.config = config
        self.period = max(1, period)
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.card_metrics = tuple(card_metrics)
        self.provenance = provenance or dict
        self.best: float | None = None
        self.best_epoch = 0
        self.best_metrics: dict[str, float] = {}  # the best epoch's card figures and metric

    @property
    def last_path(self) -> Path:
        return self.run_dir / LAST

    @property
    def best_path(self) -> Path:
        return self.run_dir / BEST

    def _fresh_metrics(self) -> dict[str, float]:
        """This epoch's evaluation, or {} if it did not evaluate."""
        metrics = self.trainer.eval_metrics
        return metrics if metrics.get("epoch") == self.trainer.epoch + 1 else {}

    def _card(self, metrics: dict[str, float]) -> dict[str, Any]:
        trainer = self.trainer
        measured = {f"val_{k}": float(metrics[k]) for k in self.card_metrics if k in metrics}
        provenance = {**self.provenance(), "epoch": str(trainer.epoch + 1), "iteration": str(trainer.iteration),
                      "torch": str(torch.__version__)}
        return self.card.replace(metrics=measured, provenance=provenance).to_dict()

    def _payload(self, metrics: dict[str, float]) -> dict[str, Any]:
        trainer = self.trainer
        return {
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "trainer": trainer.state_dict(),
            "rng": capture_rng(),
            "card": self._card(metrics),
            "config": self.config,
        }

    def _better(self, value: float) -> bool:
        """`value` beats the best so far (NaN never does)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.higher_is_better else value < self.best

    def after_epoch(self) -> None:
        trainer = self.trainer
        metrics = self._fresh_metrics()
        improved = self.metric in metrics and self._better(float(metrics[self.metric]))
        if improved:
            self.best, self.best_epoch = float(metrics[self.metric]), trainer.epoch + 1
            kept = (*self.card_metrics, self.metric)  # figures only: no timings, so a resumed run stays bit-identical
            self.best_metrics = {k: float(metrics[k]) for k in kept if k in metrics}
        final = trainer.epoch + 1 >= trainer.max_epochs or trainer.stop_requested
        if not (improved or final or (trainer.epoch + 1) % self.period == 0):
            return
        if not improved:
            save_checkpoint(self.last_path, self._payload(metrics))
            return
        save_checkpoint(self.best_path, self._payload(metrics))
        with atomic_path(self.last_path) as tmp:
            shutil.copyfile(self.best_path, tmp)
        logger.info("epoch %d: val %s %.4f, best so far -> %s", trainer.epoch + 1, self.metric, self.best,
                    self.best_path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_metrics": self.best_metrics}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], int(state["best_epoch"])
        self.best_metrics = dict(state.get("best_metrics", {}))  # absent in checkpoints before 2026-12-05
