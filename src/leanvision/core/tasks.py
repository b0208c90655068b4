"""The torch-free world's task table: per task, the pieces that deploy it.

| task   | predictor (runtime)                 | tile merger (largeimage)           | card needs          |
|--------|-------------------------------------|------------------------------------|---------------------|
| detect | `runtime.detect.DetectionPredictor` | `largeimage.pipeline.tasks.detect` | anchors, box_coder |
| count  | `runtime.count.CountPredictor`      | `largeimage.pipeline.tasks.count`  | - (its predictor checks output_stride) |
| classify | `runtime.classify.ClassifyPredictor` | `largeimage.pipeline.tasks.classify` | - |

A task is a row here (and one in the torch world's table, `data.tasks.TORCH_TASKS`) plus its
own modules; no other module names a task. `core` imports nothing from leanvision, so a row
names its pieces as "module:attribute" strings, imported on first use (`load_object`).
A plug-in task registers its row with `register_deploy_task`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from leanvision.core.enums import Task
from leanvision.core.errors import ConfigError


@dataclass(frozen=True)
class DeployTask:
    """One task's row in the torch-free world.

    Attributes:
        task: the task (`ModelCard.task`).
        predictor: "module:Class" of its predictor, `Class(engine, card, *, overrides=None)`,
            a `core.protocols.StagedPredictor` returning one result per image.
        tile_merger: "module:Class" of its large-image merger, `Class(options, card)` with
            `finish(image, out_dir) -> result` (`largeimage.pipeline.tasks`).
        card_needs: `ModelCard` fields a card of this task must set.
        whole_image: the model sees each image whole, fitted to its input (classification),
            rather than tiles of it at the card's scale; `predict` plans one tile per image.
    """

    task: Task
    predictor: str
    tile_merger: str
    card_needs: tuple[str, ...] = ()
    whole_image: bool = False


DEPLOY_TASKS: dict[str, DeployTask] = {
    Task.DETECT: DeployTask(Task.DETECT, "leanvision.runtime.detect:DetectionPredictor",
                            "leanvision.largeimage.pipeline.tasks:DetectionMerger", ("anchors", "box_coder")),
    Task.COUNT: DeployTask(Task.COUNT, "leanvision.runtime.count:CountPredictor",
                           "leanvision.largeimage.pipeline.tasks:CountMerger"),
    Task.CLASSIFY: DeployTask(Task.CLASSIFY, "leanvision.runtime.classify:ClassifyPredictor",
                              "leanvision.largeimage.pipeline.tasks:ClassifyMerger", whole_image=True),
}


def load_object(target: str) -> Any:
    """The object a "module:attribute" string names (a task table's entry), imported now."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def register_deploy_task(row: DeployTask) -> None:
    """Add a task's row (a plug-in); ValueError if the task has one already."""
    if row.task in DEPLOY_TASKS:
        raise ValueError(f"task '{row.task}' already has a deployment row")
    DEPLOY_TASKS[row.task] = row


def deploy_task(task: Task | str) -> DeployTask:
    """The row of `task`; ConfigError naming the deployable tasks if it has none."""
    try:
        return DEPLOY_TASKS[task]
    except KeyError:
        raise ConfigError(f"task '{task}' cannot be deployed yet (deployable: {', '.join(DEPLOY_TASKS)})") from None
