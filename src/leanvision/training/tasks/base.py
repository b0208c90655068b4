"""The `TaskAdapter` protocol and how a recipe's task is found."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from leanvision.core import ConfigError, ModelCard, Task
from leanvision.data.tasks import TORCH_TASKS, torch_task

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import DataLoader

    from leanvision.data.labelled import LabelledSet
    from leanvision.training.config import AugmentOptions, DataOptions, LoaderOptions, ModelOptions
    from leanvision.training.data import TrainData

Evaluate = Callable[["nn.Module"], dict[str, float]]


@dataclass(frozen=True)
class Validation:
    """What `leanvision val` shows and saves for one checkpoint on one labelled set.

    Attributes:
        lines: the report, one printed line each.
        json: the figures for `metrics.json` (beside the checkpoint and data paths).
    """

    lines: tuple[str, ...]
    json: dict[str, Any]


class TaskAdapter(Protocol):
    """The task-specific pieces of a training run.

    Attributes:
        task: the task.
        metric: the evaluation figure that picks `best.pt`.
        higher_is_better: maximise `metric` (mAP) or minimise it (MAE).
        metric_label: how `metric` is printed ("mAP@0.5", "MAE").
        shown: evaluation figures written to the log after each evaluation.
        card_metrics: evaluation figures a checkpoint's card keeps (as `val_<name>`).

    An adapter may also define `fit_to_data(config, data) -> config`, called once the data is
    loaded, to fit the recipe to it (detection shrinks crop windows larger than every image);
    the run records the fitted recipe in its config.yaml.
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

    def load_data(self, data: DataOptions, *, workers: int) -> TrainData:
        """The screened training (and validation) sets and the class names (`workers` threads decode)."""
        ...

    def model_overrides(self, model: nn.Module, options: ModelOptions, data: TrainData,
                        data_options: DataOptions, augment: AugmentOptions) -> dict[str, Any]:
        """Architecture overrides fitted to the training data (e.g. anchors), to rebuild the
        model with before training; empty to train `model` as built."""
        ...

    def train_loader(self, data: TrainData, card: ModelCard, model: nn.Module, *, augment: AugmentOptions,
                     loader: LoaderOptions, seed: int) -> DataLoader:
        """Batches `(uint8 images, targets, indices)` the model's `compute_loss` takes."""
        ...

    def evaluator(self, val: Any, card: ModelCard, *, batch_size: int) -> Evaluate:
        """model -> evaluation figures on `val` (what the EvalHook calls)."""
        ...

    def validate(self, model: nn.Module, labelled: LabelledSet, card: ModelCard, *, batch_size: int,
                 progress: Callable[[int, int], None] | None, out_dir: Path) -> Validation:
        """Score a trained model on a labelled set (`leanvision val`); plots go into `out_dir`."""
        ...


def check_sampler(adapter: TaskAdapter, sampler: str) -> None:
    """ConfigError unless the task's loader honours `loader.sampler` (`samplers`, default uniform only)."""
    allowed = getattr(adapter, "samplers", ("uniform",))
    if sampler not in allowed:
        raise ConfigError(f"loader.sampler '{sampler}' is not available for {adapter.task.value} "
                          f"(available: {', '.join(allowed)})")


def adapter_for(task: Task | str) -> TaskAdapter:
    """The adapter of `task` (`data.tasks.TORCH_TASKS`); ConfigError for a task that cannot be trained yet."""
    return torch_task(task, doing="trained").load("adapter")()


def trainable_tasks() -> list[Task]:
    """Every task with a training adapter, in table order."""
    return [row.task for row in TORCH_TASKS.values()]


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
