"""Reading a recipe: a YAML file (or a shipped recipe's name) plus `key=value` overrides
(dotted keys for groups: `optimizer.lr=0.005`), checked before any training: unknown keys,
bad values, and augmentation steps the model's task cannot build (detection or counting ops),
so a typo fails in a second rather than after the data loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from leanvision.core import ConfigError
from leanvision.core.config import recipe_path
from leanvision.training.config import AugmentOptions, TrainConfig
from leanvision.training.tasks import adapter_for, recipe_task, trainable_tasks


def check_augment(options: AugmentOptions, *, path: str | os.PathLike[str] | None = None,
                  model: str | None = None) -> None:
    """Build the augmentation once so unknown ops or parameters fail as a ConfigError.

    The ops are those of the task of `model` (a registered name: detection or counting
    ops). For a name the registry does not know, the task is the data's, known only when
    training starts: the steps must then build as the ops of some task.
    """
    task = recipe_task(model) if model is not None else None
    tasks = [task] if task is not None else trainable_tasks()
    errors = []
    for candidate in tasks:
        try:
            adapter_for(candidate).check_augment(list(options.steps))
            return
        except ConfigError as exc:
            errors.append(exc)
    raise ConfigError(errors[0].message, path=path) from None


def load_config(
    path: str | os.PathLike[str] | None, overrides: Sequence[str] = (), *, base: TrainConfig | None = None
) -> TrainConfig:
    """Read a recipe (or start from `base`), apply `key=value` overrides, check augmentations.

    Args:
        path: YAML recipe, or the name of one shipped with leanvision (`recipe_path`);
            None to start from `base`.
        overrides: `key=value` items, dotted keys for groups.
        base: the config to override when `path` is None (e.g. a run's saved config).

    Raises:
        ConfigError: unreadable file, unknown key, bad value, bad augmentation step.
    """
    if path is None and base is None:
        raise ConfigError("a recipe is needed: --config path.yaml")
    if path is not None:
        path = recipe_path(path)
    config = TrainConfig.from_yaml(path) if path is not None else base
    try:
        config = config.with_overrides(list(overrides))
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path) from None
    check_augment(config.augment, path=path, model=config.model.name)
    return config
