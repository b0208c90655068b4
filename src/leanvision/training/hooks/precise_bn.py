"""Precise BatchNorm: re-estimate running statistics with the final weights before evaluating.

BatchNorm's running mean/var are an EMA over past steps, each computed with different
weights; early in training, or with few and fast-changing steps, they lag the weights and
eval-mode outputs drift from train-mode ones. Measured here on the slim RetinaNet trained
from scratch on 4 images: after 60 steps train-mode top scores were 0.42-0.57, eval-mode
0.04 (nothing above the 0.05 threshold). Recomputing the statistics as a plain average over
a few training batches with the current weights fixes that (Wu & Johnson 2021, "Rethinking
'Batch' in BatchNorm", sec. 3; detectron2's PreciseBN hook).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from leanvision.training.loop import Batch


def _batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def update_bn_stats(
    model: nn.Module,
    batches: Iterable[Batch],
    *,
    num_batches: int,
    prepare: Callable[[torch.Tensor], torch.Tensor],
) -> int:
    """Replace every BatchNorm's running statistics by their average over `num_batches`
    (`torch.optim.swa_utils.update_bn` over the prepared images of the first batches).

    Args:
        model: called as `model(images)`; left in eval mode.
        batches: training batches `(uint8 images, targets, indices)`.
        num_batches: how many batches to average over.
        prepare: uint8 images -> model input (normalisation).

    Returns:
        The number of batches used (0 if the model has no BatchNorm).
    """
    if not _batch_norms(model) or num_batches <= 0:
        return 0
    used = 0

    def inputs() -> Iterator[torch.Tensor]:
        nonlocal used
        for images, _, _ in itertools.islice(batches, num_batches):
            used += 1
            yield prepare(images)

    try:
        update_bn(inputs(), model)
    finally:
        model.eval()
    return used
