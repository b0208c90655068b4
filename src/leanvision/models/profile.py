"""Parameters and multiply-accumulates per model part (backbone / FPN / head).

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` (built into torch, no extra
dependency) on a shape-only meta copy of the model, so an 800 px R50 RetinaNet costs
seconds and no memory. It attributes counts to the module that ran them, so each part of
`model.parts` is read off one forward. It counts a multiply-add as 2 FLOPs (convolutions
and matmuls only: BatchNorm, activations and resampling are not counted); we report
GMACs = FLOPs / 2, the unit of S0's table and torchvision's `_ops`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from leanvision.core.errors import ConfigError
from leanvision.models.meta import meta_copy, meta_input


@dataclasses.dataclass(frozen=True)
class Cost:
    """Compute and size of a model or one of its parts.

    Attributes:
        gmacs: multiply-accumulates for one image, in billions.
        params_m: parameters, in millions.
    """

    gmacs: float
    params_m: float


@dataclasses.dataclass(frozen=True)
class ModelProfile:
    """Per-part and total cost at one input size.

    Attributes:
        input_size: (height, width) in pixels.
        parts: part name ("backbone", "fpn", "head") -> cost, in the model's part order.
        total: the whole model (also counts anything outside the parts).
    """

    input_size: tuple[int, int]
    parts: dict[str, Cost]
    total: Cost

    def to_dict(self, *, digits: int = 4) -> dict[str, dict]:
        """{"parts": {name: {"gmacs", "params_m"}}, "total": {"gmacs", "params_m"}}, rounded."""

        def plain(cost: Cost) -> dict[str, float]:
            return {"gmacs": round(cost.gmacs, digits), "params_m": round(cost.params_m, digits)}

        return {"parts": {name: plain(cost) for name, cost in self.parts.items()}, "total": plain(self.total)}


def _params_m(module: nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def _flops_by_module(model: nn.Module, input_size: tuple[int, int]) -> dict[str, int]:
    """FLOPs of one image through a meta copy of `model`, keyed by module path ("" = whole model)."""
    shadow = meta_copy(model)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        shadow(meta_input(*input_size))
    root = type(shadow).__name__
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    prefix = f"{root}."
    by_path = {name.removeprefix(prefix): flops for name, flops in counts.items() if name.startswith(prefix)}
    by_path[""] = counts.get("Global", 0)
    return by_path


def profile_model(model: nn.Module, *, input_size: tuple[int, int] = (800, 800)) -> ModelProfile:
    """Measure GMACs and parameters of each part in `model.parts` for one (H, W) image.

    Args:
        model: a leanvision model with `parts` (part name -> submodule path); it may live
            on any device, meta included, and is not run or changed.
        input_size: (height, width) of the input in pixels.
    """
    parts: Mapping[str, str] | None = getattr(model, "parts", None)
    if not parts:
        raise ConfigError(f"{type(model).__name__} declares no parts to profile")
    flops = _flops_by_module(model, input_size)
    costs = {
        part: Cost(flops.get(path, 0) / 2e9, _params_m(model.get_submodule(path)))
        for part, path in parts.items()
    }
    return ModelProfile(input_size, costs, Cost(flops[""] / 2e9, _params_m(model)))
