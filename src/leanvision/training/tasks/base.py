"""The `TaskAdapter` protocol and how a recipe's task is found."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from leanvision.core import ConfigError, ModelCard, Task

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import DataLoader

    from leanvision.training.config import TrainConfig
    from leanvision.training.data import TrainData

Evaluate = Callable[["nn.Module"], dict[str, float]]


class TaskAdapter(Protocol):
    """The task-specific pieces of a training run.

    Attributes:
        task: the task.
        metric: the evaluation figure that picks `best.pt`.
        higher_is_better: maximise `metric` (mAP) or minimise it (MAE).
        metric_label: how `metric` is printed ("mAP@0.5", "MAE").
        shown: evaluation figures written to the log after each evaluation.
        card_metrics: evaluation figures a checkpoint's card keeps (as `val_<name>`).
    """

    task: Task
    metric: str
    higher_is_better: bool
    metric_label: str
    shown: tuple[str, ...]
    card_metrics: tuple[str, ...]

    def check_augment(self, steps: Sequence[Mapping[str, Any]]) -> None:
        """ConfigError if a recipe's augmentation steps are not valid for this task."""
        ...

    def load_data(self, config: TrainConfig) -> TrainData:
        """The screened training (and validation) sets and the class names."""
        ...

    def train_loader(self, config: TrainConfig, data: TrainData, card: ModelCard, model: nn.Module) -> DataLoader:
        """Batches `(uint8 images, targets, indices)` the model's `compute_loss` takes."""
        ...

    def evaluator(self, config: TrainConfig, val: Any, card: ModelCard) -> Evaluate:
        """model -> evaluation figures on `val` (what the EvalHook calls)."""
        ...


def adapter_for(task: Task | str) -> TaskAdapter:
    """The adapter of `task`; ConfigError for a task that cannot be trained yet."""
    from leanvision.training.tasks.count import CountAdapter
    from leanvision.training.tasks.detect import DetectAdapter

    adapters: dict[Task, TaskAdapter] = {Task.DETECT: DetectAdapter(), Task.COUNT: CountAdapter()}
    try:
        return adapters[Task(task)]
    except (KeyError, ValueError):
        raise ConfigError(f"training for task '{task}' is not available (trainable: detect, count)") from None


def recipe_task(model_name: str) -> Task | None:
    """The task of a registered model, or None for a name the registry does not know."""
    from leanvision.models.registry import model_entry

    try:
        return model_entry(model_name).task
    except ConfigError:
        return None


def data_task(path: Path) -> Task:
    """The task of the dataset at `path`, from its format; DataError if there is none."""
    from leanvision.data.formats import TASK_OF_FORMAT, detect_format

    return TASK_OF_FORMAT[detect_format(Path(path))]
