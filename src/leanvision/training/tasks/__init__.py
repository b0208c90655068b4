"""Task adapters: what `train` needs to know about a task, so one runner trains every task.

| task   | data                               | target                     | best.pt by      |
|--------|------------------------------------|----------------------------|-----------------|
| detect | COCO / VOC / YOLO (`read_detection`) | boxes + labels           | val mAP@0.5, max |
| count  | points JSON / CSV, ShanghaiTech    | density map at the stride  | val MAE, min    |
| classify | ImageFolder, labels.csv          | class label (soft: mixup)  | val top-1, max  |

The adapters are the `adapter` entries of the torch world's task table (`data.tasks.TORCH_TASKS`).
A recipe's task is its registered model's (`models.registry`); a model built by a caller's
factory under an unregistered name takes the task of its training set's format.
"""

from leanvision.training.tasks.base import (
    TaskAdapter,
    adapter_for,
    data_task,
    recipe_task,
    trainable_tasks,
)

__all__ = ["TaskAdapter", "adapter_for", "data_task", "recipe_task", "trainable_tasks"]
