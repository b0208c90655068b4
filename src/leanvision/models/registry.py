"""The model registry: `create_model`, `list_models`, `register_model`.

Built-in models are one explicit table (name -> "module:function", task), imported only
when a model is created, so `import leanvision.models` loads neither torch nor any model
code and no import has the side effect of filling the registry. `register_model` adds a
user's own builders; like torchvision's `_api.register_model`, a taken name is refused.

A builder is called as `builder(num_classes=..., weights_backbone=..., **overrides)` and
returns an `nn.Module` of its task family; `create_model` then loads `weights` into it.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from leanvision.core.config import as_enum
from leanvision.core.enums import Task
from leanvision.core.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

Builder = Callable[..., "nn.Module"]
B = TypeVar("B", bound=Builder)


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A registered model: its task and where its builder lives ("module:function" or the function)."""

    task: Task
    target: str | Builder

    def builder(self) -> Builder:
        if callable(self.target):
            return self.target
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)


_DETECT = "leanvision.models.tasks.detect.variants"
_COUNT = "leanvision.models.tasks.count.variants"
_CLASSIFY = "leanvision.models.tasks.classify.variants"

BUILTIN_MODELS: dict[str, ModelEntry] = {
    "retinanet_mbv2_slim": ModelEntry(Task.DETECT, f"{_DETECT}:retinanet_mbv2_slim"),
    "retinanet_mbv2": ModelEntry(Task.DETECT, f"{_DETECT}:retinanet_mbv2"),
    "retinanet_effl0_slim": ModelEntry(Task.DETECT, f"{_DETECT}:retinanet_effl0_slim"),
    "retinanet_r50": ModelEntry(Task.DETECT, f"{_DETECT}:retinanet_r50"),
    "csrnet": ModelEntry(Task.COUNT, f"{_COUNT}:csrnet"),
    "csrnet_mbv2": ModelEntry(Task.COUNT, f"{_COUNT}:csrnet_mbv2"),
    **{name: ModelEntry(Task.CLASSIFY, f"{_CLASSIFY}:{name}") for name in (
        "cls_effl0", "cls_mnv3", "cls_resnet18", "cls_resnet50", "cls_resnet50_cbam", "cls_seresnext50",
        "cls_inception_resnet_v2", "timm_classifier")},
}

_user_models: dict[str, ModelEntry] = {}


def _entries() -> dict[str, ModelEntry]:
    return {**BUILTIN_MODELS, **_user_models}


def register_model(name: str, *, task: Task | str) -> Callable[[B], B]:
    """Decorator registering a user's model builder under `name`.

    The builder is called as `builder(num_classes=..., weights_backbone=..., **overrides)`.

    Raises:
        ValueError: `name` is already taken (built-in or registered).
    """
    entry_task = _task(task)

    def decorate(builder: B) -> B:
        if name in _entries():
            raise ValueError(f"a model is already registered under the name '{name}'")
        _user_models[name] = ModelEntry(entry_task, builder)
        return builder

    return decorate


def unregister_model(name: str) -> None:
    """Remove a user-registered model (built-in models cannot be removed)."""
    if name not in _user_models:
        raise ConfigError(f"'{name}' is not a user-registered model")
    del _user_models[name]


def _task(task: Task | str) -> Task:
    return as_enum(Task, task, what="task")


def list_models(task: Task | str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally only those of one task."""
    wanted = None if task is None else _task(task)
    return sorted(name for name, entry in _entries().items() if wanted is None or entry.task is wanted)


def model_entry(name: str) -> ModelEntry:
    """The registry entry for `name`; an unknown name raises ConfigError listing close names."""
    entries = _entries()
    if name in entries:
        return entries[name]
    close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(entries))}"
    raise ConfigError(f"unknown model '{name}'; {hint}")


def create_model(
    name: str,
    *,
    num_classes: int,
    weights: str | os.PathLike[str] | None = None,
    weights_backbone: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model. Nothing downloads: weights come from local files.

    Args:
        name: registry name, e.g. "retinanet_mbv2_slim" (see `list_models()`).
        num_classes: number of classes the head scores.
        weights: a full-model state dict or leanvision checkpoint (dict with a "model"
            entry) for this architecture.
        weights_backbone: a torchvision classifier state dict for the backbone only
            (e.g. `mobilenet_v2-b0353104.pth`); ignored parts (its classifier) are dropped.
        **overrides: architecture options (widths, anchors, thresholds...); unknown
            options raise ConfigError naming them.

    Raises:
        ConfigError: unknown name or option, bad value.
        ModelError: a weights file is missing, unreadable or does not fit.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
        raise ConfigError(f"{name}: num_classes must be a positive integer, got {num_classes!r}")
    model = model_entry(name).builder()(num_classes=num_classes, weights_backbone=weights_backbone, **overrides)
    if weights is not None:
        from leanvision.models.weights import load_model_weights

        load_model_weights(model, weights, what=name)
    return model
