"""Frozen BatchNorm folded into the convolution before it, while training.

A frozen stage's BatchNorm is a fixed per-channel scale and shift; folded into the
convolution's weights and bias it costs nothing, where left as its own layer it is two full
passes over the largest activations of the network (a multiply and an add, plus their
allocations): 17 % of the slim RetinaNet's training step with the stem and stride-2/4/8
stages frozen, and folding made that step 1.16-1.33x as fast (BENCHMARKS.md).

Written here because the libraries' folds (`torch.ao.nn.intrinsic`, `torch.fx`'s `fuse`,
`torch.nn.utils.fuse_conv_bn_eval`) replace the two layers by one: the state dict changes,
and checkpoints, resume, EMA and export would all see a different model. Here the two
layers keep their parameters and names; only their training-mode forward changes: the
convolution scales its weights by the BatchNorm's current statistics (read at each call, so
loading a state dict needs nothing more) and the BatchNorm applies only its activation. In
eval mode both run as before, so evaluation and export are untouched.
"""

from __future__ import annotations

import copy
import itertools

import torch
from timm.layers import Conv2dSame, FrozenBatchNormAct2d
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

_FROZEN_NORMS = (FrozenBatchNormAct2d, FrozenBatchNorm2d)


def _scale_shift(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    return scale, norm.bias - norm.running_mean * scale


class _Folded:
    """Training-mode forward of a convolution with the frozen norm after it folded in."""

    _fold_norm: tuple[nn.Module]

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale, shift = _scale_shift(self._fold_norm[0])
        weight = self.weight * scale.reshape(-1, *([1] * (self.weight.dim() - 1)))
        bias = shift if self.bias is None else self.bias * scale + shift
        return weight, bias


class FoldedConv2d(_Folded, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        return self._conv_forward(x, *self._folded())


class FoldedConv2dSame(_Folded, Conv2dSame):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from timm.layers import conv2d_same

        weight, bias = self._folded()
        return conv2d_same(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class FoldedFrozenBatchNormAct2d(FrozenBatchNormAct2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x)) if self.training else super().forward(x)


class FoldedFrozenBatchNorm2d(FrozenBatchNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.training else super().forward(x)


_CONVS = {nn.Conv2d: FoldedConv2d, Conv2dSame: FoldedConv2dSame}
_NORMS = {FrozenBatchNormAct2d: FoldedFrozenBatchNormAct2d, FrozenBatchNorm2d: FoldedFrozenBatchNorm2d}


def _pairs(module: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(convolution, frozen norm) pairs that are consecutive children of one parent, the
    norm sized to the convolution's output: how timm's and torchvision's blocks lay them out."""
    found = []
    for parent in module.modules():
        children = list(parent.children())
        for conv, norm in itertools.pairwise(children):
            if (type(conv) in _CONVS and type(norm) in _NORMS and not conv.weight.requires_grad
                    and norm.weight.shape[0] == conv.out_channels and conv.padding_mode == "zeros"):
                found.append((conv, norm))
    return found


def fold_frozen_norms(module: nn.Module, *, probe_size: int = 64) -> int:
    """Fold every frozen BatchNorm of `module` into the frozen convolution before it (in
    training mode; see the module docstring); returns how many were folded.

    A pair is folded only where the two are consecutive children of one parent. The folded
    module's training-mode output is compared with the original's on a random input; if
    they differ (a parent whose forward does not run its children in that order), every
    fold is undone and 0 is returned.
    """
    pairs = _pairs(module)
    if not pairs:
        return 0
    probe = torch.randn(2, _in_channels(module), probe_size, probe_size, generator=torch.Generator().manual_seed(0))
    expected = _probe(module, probe)
    for conv, norm in pairs:
        conv.__class__ = _CONVS[type(conv)]
        conv._fold_norm = (norm,)
        norm.__class__ = _NORMS[type(norm)]
    got = _probe(module, probe)
    if all(torch.allclose(a, b, rtol=1e-4, atol=1e-4) for a, b in zip(expected, got, strict=True)):
        return len(pairs)
    unfold(module)
    return 0


def unfold(module: nn.Module) -> int:
    """Undo every fold in `module` (its layers run as two again); returns how many."""
    originals = {folded: original for original, folded in (*_CONVS.items(), *_NORMS.items())}
    undone = 0
    for part in module.modules():
        if type(part) in originals:
            undone += isinstance(part, _Folded)
            part.__class__ = originals[type(part)]
            part.__dict__.pop("_fold_norm", None)
    return undone


def _probe(module: nn.Module, probe: torch.Tensor) -> list[torch.Tensor]:
    """Training-mode outputs of a copy of `module`, its trainable BatchNorm layers on their
    running statistics (batch statistics of a tiny probe would amplify rounding), with the
    random number generators restored after."""
    copied = copy.deepcopy(module).train()
    for part in copied.modules():
        if isinstance(part, nn.modules.batchnorm._BatchNorm):
            part.eval()
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        return _flat(copied(probe))


def _in_channels(module: nn.Module) -> int:
    first = next(m for m in module.modules() if isinstance(m, nn.Conv2d))
    return first.in_channels


def _flat(output: object) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    return [t for item in output for t in _flat(item)]

