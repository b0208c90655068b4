"""The optimizer, with weight decay on weights only (not on norm parameters or biases)."""

from __future__ import annotations

import torch
from torch import nn

from leanvision.training.config import OptimizerKind, OptimizerOptions


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: conv/linear weights with decay; biases and norm scales/shifts without.

    Decaying BatchNorm's scale and shift only shrinks features the next layer re-scales
    (Goyal et al. 2017 keep them out of weight decay, as detectron2 and timm do).
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim > 1 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, options: OptimizerOptions) -> torch.optim.Optimizer:
    """SGD (S0: momentum 0.9) or AdamW over the trainable parameters; the LR hook sets the LR."""
    groups = param_groups(model, options.weight_decay)
    if options.kind is OptimizerKind.SGD:
        return torch.optim.SGD(groups, lr=options.lr, momentum=options.momentum, nesterov=options.nesterov)
    return torch.optim.AdamW(groups, lr=options.lr)
