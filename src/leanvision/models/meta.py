"""Shape-only copies of a module on the meta device: measure shapes and FLOPs for free.

A meta tensor has a shape and dtype but no storage, so a forward pass costs no compute
and leaves the original module untouched (BatchNorm running statistics included).
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn


def meta_copy(module: nn.Module) -> nn.Module:
    """A deep copy of `module` whose parameters and buffers live on the meta device.

    The copy is made without copying any weight data: every tensor is replaced by an
    empty meta tensor of the same shape through deepcopy's memo table.
    """
    memo: dict[int, torch.Tensor] = {}
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        empty = torch.empty_like(tensor, device="meta")
        is_parameter = isinstance(tensor, nn.Parameter)
        memo[id(tensor)] = nn.Parameter(empty, tensor.requires_grad) if is_parameter else empty
    return copy.deepcopy(module, memo)


def meta_input(height: int, width: int, *, batch: int = 1) -> torch.Tensor:
    """An empty (batch, 3, height, width) float32 image batch on the meta device."""
    return torch.empty(batch, 3, height, width, device="meta")
