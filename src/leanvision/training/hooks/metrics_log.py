"""Per-epoch metrics: `metrics.jsonl` and `metrics.csv` in the run directory.

Each epoch adds one row (training loss means, LR, speed, validation figures). Both files are
rewritten whole through a temp file + rename, so a crash never leaves half a row; on resume
the rows of epochs after the checkpoint are dropped, so the log matches the weights.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from leanvision.core.io import atomic_write_text
from leanvision.training.loop import HookBase

logger = logging.getLogger(__name__)

JSONL, CSV = "metrics.jsonl", "metrics.csv"


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The rows logged so far in `run_dir` (empty if none)."""
    path = Path(run_dir) / JSONL
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _csv_text(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class MetricsLogHook(HookBase):
    """Logs one row per epoch to `metrics.jsonl` and `metrics.csv` and one line to the log."""

    def __init__(self, run_dir: Path, *, batch_size: int) -> None:
        self.run_dir = Path(run_dir)
        self.batch_size = batch_size
        self.rows: list[dict[str, Any]] = []
        self._sums: dict[str, float] = defaultdict(float)
        self._steps = 0
        self._step_seconds = 0.0
        self._epoch_start = 0.0

    def before_train(self) -> None:
        start = self.trainer.start_epoch
        self.rows = [row for row in read_rows(self.run_dir) if row["epoch"] <= start]
        self._write()

    def before_epoch(self) -> None:
        self._sums.clear()
        self._steps, self._step_seconds = 0, 0.0
        self._epoch_start = time.perf_counter()

    def after_step(self) -> None:
        for name, value in self.trainer.losses.items():
            self._sums[name] += value
        self._steps += 1
        self._step_seconds += self.trainer.step_seconds

    def after_epoch(self) -> None:
        trainer = self.trainer
        row: dict[str, Any] = {"epoch": trainer.epoch + 1, "iteration": trainer.iteration,
                               "lr": getattr(trainer, "lr", None)}
        row |= {f"loss_{k}" if k != "total" else "loss": v / max(1, self._steps) for k, v in self._sums.items()}
        row["train_images_per_s"] = self._steps * self.batch_size / max(self._step_seconds, 1e-9)
        row["epoch_seconds"] = time.perf_counter() - self._epoch_start
        if trainer.eval_metrics.get("epoch") == trainer.epoch + 1:
            row |= {f"val_{k}": v for k, v in trainer.eval_metrics.items() if k != "epoch"}
        self.rows.append(row)
        self._write()
        logger.info("epoch %d/%d: loss %.4f, lr %.3g, %.1f img/s", row["epoch"], trainer.max_epochs,
                    row.get("loss", float("nan")), row["lr"] or 0.0, row["train_images_per_s"])

    def _write(self) -> None:
        if not self.rows:
            for name in (JSONL, CSV):
                (self.run_dir / name).unlink(missing_ok=True)
            return
        atomic_write_text(self.run_dir / JSONL, "".join(json.dumps(row) + "\n" for row in self.rows))
        atomic_write_text(self.run_dir / CSV, _csv_text(self.rows))
