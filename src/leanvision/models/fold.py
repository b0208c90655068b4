"""Frozen BatchNorm folded into the convolution before it, while training.

A frozen BatchNorm is a fixed per-channel scale and shift; folded into the convolution's
weights and bias it costs nothing, where left as its own layer it is two full passes over
the activations (a multiply and an add, plus their allocations), and for a trainable
convolution two more backward. Folding the frozen stem and stride-2/4/8 stages made the slim
RetinaNet's training step 1.16-1.33x as fast on AMX; with every backbone BatchNorm frozen
(`frozen_bn`) and folded, trainable convolutions included, the step benchmark ran 1.13x the
images/s of the recipe before on AVX2 in 25 % less memory, though a 25-minute training loop
ran 0.91x (BENCHMARKS.md). The convolution may be trainable: its weights
are scaled at each call, and the gradient flows through the scale to them.

Written here because the libraries' folds (`torch.ao.nn.intrinsic`, `torch.fx`'s `fuse`,
`torch.nn.utils.fuse_conv_bn_eval`) replace the two layers by one: the state dict changes,
and checkpoints, resume, EMA and export would all see a different model. Here the two
layers keep their parameters and names; only their training-mode forward changes: the
convolution scales its weights by the BatchNorm's current statistics (read at each call, so
loading a state dict needs nothing more) and the BatchNorm applies only its activation. In
eval mode both run as before, so evaluation and export are untouched.

A folded TF-"same" convolution (timm's `Conv2dSame`, EfficientNet-Lite's stride-2 layers)
that needs no gradient skips timm's padded copy of its input: an odd "same" padding (one
more row after than before) equals a symmetric one with a zero tap in front of the kernel.
The copy cost 7x the depthwise convolution it fed on the frozen stride-2 layers (27 % of the
frozen stem's forward); with gradients the larger kernel's backward costs more than the
copy, so trainable layers keep timm's path.
"""

from __future__ import annotations

import copy
import itertools
import math

import torch
from timm.layers import Conv2dSame, FrozenBatchNormAct2d, conv2d_same
from torch import nn
from torch.nn import functional as F
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
        weight, bias = self._folded()
        if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
            return conv2d_same(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        return same_conv_without_copy(x, weight, bias, self.stride, self.dilation, self.groups)


def same_conv_without_copy(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                           stride: tuple[int, int], dilation: tuple[int, int], groups: int) -> torch.Tensor:
    """timm's `conv2d_same` (TensorFlow's "same" padding) without padding a copy of `x`.

    Per dimension the padding is `total // 2` before and the rest after; where `total` is
    odd, the convolution runs with `total // 2 + 1` on both sides and a zero tap in front of
    the kernel, which gives the same output, element for element.
    """
    if tuple(dilation) != (1, 1):
        return conv2d_same(x, weight, bias, stride, (0, 0), dilation, groups)
    padding, grow = [], []
    for size, k, s in zip(x.shape[-2:], weight.shape[-2:], stride, strict=True):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        padding.append(total // 2 + total % 2)
        grow.append(total % 2)
    if any(grow):
        weight = F.pad(weight, (grow[1], 0, grow[0], 0))
    return F.conv2d(x, weight, bias, stride, tuple(padding), 1, groups)


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
    norm sized to the convolution's output: how timm's and torchvision's blocks lay them out.
    The convolution may be trainable."""
    found = []
    for parent in module.modules():
        children = list(parent.children())
        for conv, norm in itertools.pairwise(children):
            if (type(conv) in _CONVS and type(norm) in _NORMS
                    and norm.weight.shape[0] == conv.out_channels and conv.padding_mode == "zeros"):
                found.append((conv, norm))
    return found


def fold_frozen_norms(module: nn.Module, *, probe_size: int = 64) -> int:
    """Fold every frozen BatchNorm of `module` into the convolution before it (in
    training mode; see the module docstring); returns how many were folded.

    A pair is folded only where the two are consecutive children of one parent. The folded
    module's training-mode output is compared with the original's on a random input; if
    they differ (a parent whose forward does not run its children in that order), every
    fold is undone and 0 is returned, as it is for a module on the meta device (built to be
    profiled, nothing to run or check).
    """
    pairs = _pairs(module)
    if not pairs or any(p.is_meta for p in module.parameters()):
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

