"""The torch world's task table: per task, the pieces that train, read, export and check it.

| task   | training adapter                     | labelled set (val, bench, quantize) | export and parity           |
|--------|--------------------------------------|-------------------------------------|-----------------------------|
| detect | `training.tasks.detect.DetectAdapter` | `data.labelled.read_detection_set`  | `export.tasks.DetectExport` |
| count  | `training.tasks.count.CountAdapter`   | `data.labelled.read_counting_set`   | `export.tasks.CountExport`  |
| classify | `training.tasks.classify.ClassifyAdapter` | `data.labelled.read_classification_set` | `export.tasks.ClassifyExport` |

A task is a row here (and one in the torch-free table, `core.tasks.DEPLOY_TASKS`) plus its own
modules; no other module names a task. The table sits in the lowest torch-world layer so that
every layer above may read it; its entries are "module:attribute" strings imported on first
use (`core.tasks.load_object`), so it imports none of them. A plug-in task adds its row with
`register_torch_task`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leanvision.core import ConfigError, Task
from leanvision.core.tasks import load_object


@dataclass(frozen=True)
class TorchTask:
    """One task's row in the torch world.

    Attributes:
        task: the task (`ModelCard.task`, a model's `task`).
        adapter: "module:Class" of its training adapter (`training.tasks.TaskAdapter`).
        labelled_set: "module:function" `(path, class_names | None) -> data.labelled.LabelledSet`.
        export: "module:Class" of its export pieces (`export.tasks.ExportTask`): outputs, output
            shape check, torch reference and parity comparison.
    """

    task: Task
    adapter: str
    labelled_set: str
    export: str

    def load(self, field: str) -> Any:
        """The object the row's `field` names, imported now."""
        return load_object(getattr(self, field))


TORCH_TASKS: dict[str, TorchTask] = {
    Task.DETECT: TorchTask(Task.DETECT, "leanvision.training.tasks.detect:DetectAdapter",
                           "leanvision.data.labelled:read_detection_set", "leanvision.export.tasks:DetectExport"),
    Task.COUNT: TorchTask(Task.COUNT, "leanvision.training.tasks.count:CountAdapter",
                          "leanvision.data.labelled:read_counting_set", "leanvision.export.tasks:CountExport"),
    Task.CLASSIFY: TorchTask(Task.CLASSIFY, "leanvision.training.tasks.classify:ClassifyAdapter",
                             "leanvision.data.labelled:read_classification_set",
                             "leanvision.export.tasks:ClassifyExport"),
}


def torch_task(task: Task | str, *, doing: str = "handled") -> TorchTask:
    """The row of `task`; ConfigError naming the tasks that have one."""
    try:
        return TORCH_TASKS[task]
    except KeyError:
        raise ConfigError(f"task '{task}' cannot be {doing} yet (available: {', '.join(TORCH_TASKS)})") from None


def register_torch_task(row: TorchTask) -> None:
    """Add a task's row (a plug-in); ValueError if the task has one already."""
    if row.task in TORCH_TASKS:
        raise ValueError(f"task '{row.task}' already has a torch-world row")
    TORCH_TASKS[row.task] = row
