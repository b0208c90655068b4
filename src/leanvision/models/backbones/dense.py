"""Stride-8 front ends for dense prediction (crowd counting), cut from torchvision classifiers.

- `vgg16_frontend`: VGG-16's first 10 convolutions (conv1_1 .. conv4_3) with its first three
  max-pools, 512 channels at 1/8 resolution: CSRNet's front end (Li et al., CVPR 2018).
  The pools round up (`ceil_mode`), so an H x W input gives ceil(H/8) x ceil(W/8) cells,
  what the sum-pooled density targets have.
- `mobilenet_v2_frontend`: MobileNetV2 up to its 96-channel stage (blocks 0-13), with the
  stride-2 block 7 set to stride 1 and blocks 8-13 dilated by 2, as DeepLab runs MobileNetV2
  at output stride 8 (Sandler et al. 2018, sec. 6.3): the same receptive field, 1/8
  resolution, at a few per cent of VGG's cost.

Classifiers are built with `weights=None` (nothing downloads); ImageNet weights load from a
local torchvision state-dict file (`vgg16-397923af.pth`, `vgg16_bn-6c64b313.pth`,
`mobilenet_v2-b0353104.pth`) through `FrontEnd.load_torchvision`; the layers past the cut
and the classifier head are dropped, anything else that does not fit is a ModelError.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch
import torchvision
from torch import nn

from leanvision.models.weights import StateDict, load_checked, read_state_dict

_FEATURE_KEY = re.compile(r"features\.(\d+)\.(.+)")
_VGG16_CUT = 23  # features[:23]: conv1_1 .. conv4_3 and its ReLU, three max-pools
_VGG16_BN_CUT = 33  # the same layers with BatchNorm after every convolution
_MBV2_CUT = 14  # blocks 0..13: 96 channels


class FrontEnd(nn.Module):
    """The first `len(body)` layers of a torchvision classifier's `features`, stride 8.

    Args:
        body: `features[:cut]` of the classifier, indices (and state-dict keys) kept.
        out_channels: channels of the output.
    """

    stride: int = 8

    def __init__(self, body: nn.Sequential, *, out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, out_channels, ceil(H/8), ceil(W/8))."""
        return self.body(images)

    def from_torchvision(self, state: Mapping[str, torch.Tensor]) -> StateDict:
        """A classifier state dict renamed to this module's keys (`features.i.*` -> `body.i.*`);
        the classifier head and the layers past the cut are dropped, other keys kept (so a
        file of another architecture fails the check instead of loading nothing)."""
        body = {}
        for key, value in state.items():
            if key.startswith("classifier."):
                continue
            match = _FEATURE_KEY.fullmatch(key)
            if match is None:
                body[key] = value
            elif int(match[1]) < len(self.body):
                body[f"body.{match[1]}.{match[2]}"] = value
        return body

    def load_torchvision(self, path: str | os.PathLike[str], *, what: str) -> None:
        """Load a torchvision classifier state-dict file; ModelError if it does not fit."""
        load_checked(self, self.from_torchvision(read_state_dict(path)), path=path, what=what)


def vgg16_frontend(*, batch_norm: bool = False) -> FrontEnd:
    """VGG-16 conv1_1 .. conv4_3 (torchvision `vgg16`, or `vgg16_bn` with `batch_norm`).

    CSRNet uses the plain VGG-16 (no BatchNorm) from ImageNet weights; BatchNorm makes
    training from scratch workable.
    """
    if batch_norm:
        features, cut = torchvision.models.vgg16_bn(weights=None).features, _VGG16_BN_CUT
    else:
        features, cut = torchvision.models.vgg16(weights=None).features, _VGG16_CUT
    body = features[:cut]
    for layer in body:
        if isinstance(layer, nn.MaxPool2d):
            layer.ceil_mode = True  # no parameters: torchvision weights still fit
    return FrontEnd(body, out_channels=512)


def _dilate(block: nn.Module, *, stride_one: bool, dilation: int) -> None:
    """Set the depthwise 3x3 convolution of an inverted-residual block to stride 1 / dilation."""
    for conv in block.modules():
        if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
            if stride_one:
                conv.stride = (1, 1)
            conv.dilation = (dilation, dilation)
            conv.padding = (dilation, dilation)


def mobilenet_v2_frontend() -> FrontEnd:
    """MobileNetV2 blocks 0-13 at output stride 8: block 7 (stride 2) runs at stride 1 and
    blocks 8-13 are dilated by 2; 96 channels out."""
    features = torchvision.models.mobilenet_v2(weights=None).features[:_MBV2_CUT]
    _dilate(features[7], stride_one=True, dilation=1)
    for index in range(8, _MBV2_CUT):
        _dilate(features[index], stride_one=False, dilation=2)
    return FrontEnd(features, out_channels=96)
