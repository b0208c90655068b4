"""`Compose` and `build_augmentation`: an augmentation pipeline from a recipe's list.

A recipe's `augment:` list names one op per step, with its parameters beside it:

    augment:
      - {op: replace_background, p: 0.3, stain_norm: macenko}
      - {op: random_shift, p: 0.3}
      - {op: online_crop_resize, crop: 1600, size: 800}
      - {op: random_flip, horizontal: 0.5, vertical: 0.5}

Each op's parameters are checked by its frozen `Config` dataclass: an unknown op or
parameter, or a bad value, raises ConfigError naming the step (with a close-match hint).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from leanvision.core import Config, ConfigError, Detections
from leanvision.data.augment.common import Augmentation, NegativeSource
from leanvision.data.augment.geometric import OnlineCropResize, RandomFlip, Resize
from leanvision.data.augment.paste import RandomShift, ReplaceBackground, ReplaceBackgroundConfig
from leanvision.data.augment.photometric import PhotometricJitter

# Recipe op name -> the Config dataclass of its parameters. Ops that are their own config
# are used as built; ReplaceBackground also needs the dataset's negative images.
OPS: dict[str, type[Config]] = {
    "online_crop_resize": OnlineCropResize,
    "random_flip": RandomFlip,
    "random_shift": RandomShift,
    "replace_background": ReplaceBackgroundConfig,
    "photometric_jitter": PhotometricJitter,
    "resize": Resize,
}


class Compose:
    """Apply augmentations in order, all drawing from the one generator given."""

    def __init__(self, ops: Sequence[Augmentation]) -> None:
        self.ops = tuple(ops)

    def __call__(self, image: np.ndarray, targets: Detections, rng: np.random.Generator) -> tuple[np.ndarray, Detections]:
        for op in self.ops:
            image, targets = op(image, targets, rng)
        return image, targets

    @property
    def scale(self) -> float:
        """Output pixels per source pixel of the fixed-scale steps (S0's OnlineCropResize 1600 ->
        800: 0.5); 1.0 when no step rescales by a fixed factor."""
        return float(np.prod([getattr(op, "scale", 1.0) for op in self.ops]))

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[Augmentation]:
        return iter(self.ops)

    def __repr__(self) -> str:
        return f"Compose({list(self.ops)!r})"


def _known_ops(name: str) -> str:
    close = difflib.get_close_matches(name, list(OPS), n=1)
    return f"(known: {', '.join(OPS)})" + (f"; did you mean '{close[0]}'?" if close else "")


def _op_name(step: Any, where: str) -> str:
    if not isinstance(step, Mapping):
        raise ConfigError(f"{where}: expected a mapping like {{op: random_flip}}, got {step!r}")
    name = step.get("op")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: missing 'op' (the augmentation's name) {_known_ops('')}")
    if name not in OPS:
        raise ConfigError(f"{where}: unknown op '{name}' {_known_ops(name)}")
    return name


def build_step(step: Mapping[str, Any], *, negatives: NegativeSource | None = None, where: str = "augment") -> Augmentation:
    """One augmentation from a recipe step `{op: name, param: value, ...}`."""
    name = _op_name(step, where)
    config = OPS[name].from_dict({k: v for k, v in step.items() if k != "op"}, where=f"{where} ({name})")
    if isinstance(config, ReplaceBackgroundConfig):
        if negatives is None:
            raise ConfigError(
                f"{where} ({name}) needs negative images (images without boxes) to paste onto, "
                "and none were given: add some to the dataset or remove the step"
            )
        return ReplaceBackground.from_config(config, negatives)
    return config  # type: ignore[return-value]  # the other ops are their own configs


def build_augmentation(steps: Sequence[Mapping[str, Any]], *, negatives: NegativeSource | None = None) -> Compose:
    """A `Compose` from a recipe's `augment:` list.

    Args:
        steps: one mapping per op, `{"op": name, **parameters}`; names are the keys of `OPS`.
        negatives: pool of negative images for `replace_background` (see
            `paste.negative_pool`); ConfigError if the recipe uses it and this is None.
    """
    if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Sequence):
        raise ConfigError(f"augment: expected a list of steps, got {steps!r}")
    return Compose([build_step(step, negatives=negatives, where=f"augment[{i}]") for i, step in enumerate(steps)])
