"""A rich progress bar per epoch: step count, running loss, it/s and ETA (terminals only)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from leanvision.training.loop import HookBase


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} it/s" if task.speed else "-- it/s")


class ProgressHook(HookBase):
    """Draws `epoch i/n [bar] step/steps loss it/s elapsed ETA` on stderr.

    Hidden when the console is not a terminal, so logs and CI output stay clean (the
    metrics log hook writes one line per epoch instead).
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task = None
        self._loss_sum = 0.0
        self._steps = 0

    def before_train(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), _RateColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            console=self.console, transient=True, disable=not self.console.is_terminal,
        )
        self._progress.start()

    def before_epoch(self) -> None:
        trainer = self.trainer
        self._loss_sum, self._steps = 0.0, 0
        self._task = self._progress.add_task(
            f"epoch {trainer.epoch + 1}/{trainer.max_epochs}", total=trainer.steps_per_epoch, loss="--"
        )

    def after_step(self) -> None:
        self._loss_sum += self.trainer.losses["total"]
        self._steps += 1
        self._progress.update(self._task, advance=1, loss=f"{self._loss_sum / self._steps:.4f}")

    def after_epoch(self) -> None:
        self._progress.remove_task(self._task)

    def after_train(self) -> None:
        if self._progress is not None:
            self._progress.stop()
