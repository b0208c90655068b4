"""RetinaNet head with a configurable tower width (S0's slim head: 128 -> 64 channels) and depth.

Built from torchvision's `RetinaNetHead` so its focal and L1 losses, its initialisation
(normal std 0.01, classification bias from prior probability 0.01) and its state-dict keys
are reused; only each tower's first convolution is swapped when the FPN is wider than the
tower.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops.misc import Conv2dNormActivation


def _tower_entry(in_channels: int, channels: int) -> Conv2dNormActivation:
    """3x3 conv + ReLU from the FPN width to the tower width, initialised as torchvision's tower."""
    block = Conv2dNormActivation(in_channels, channels, norm_layer=None)
    conv = block[0]
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.zeros_(conv.bias)
    return block


def retina_head(in_channels: int, channels: int, *, num_anchors: int, num_classes: int,
                convs: int = 4) -> RetinaNetHead:
    """torchvision v1 RetinaNet head (`convs` conv + ReLU per tower, no norm) of width `channels`.

    Args:
        in_channels: FPN channels feeding the head.
        channels: tower width; the first conv of each tower maps `in_channels` to it.
        num_anchors: anchors per feature-map cell.
        num_classes: classes scored by sigmoid (no background class).
        convs: layers per tower (torchvision's 4, or fewer: the first `convs` of them, so
            state-dict keys stay torchvision's).
    """
    if not 1 <= convs <= 4:
        raise ValueError(f"a RetinaNet head tower has 1 to 4 convolutions, got {convs}")
    # No GroupNorm: the v1 head (and mmdet's RetinaHead, which S0 used) has none; v2 adds it.
    head = RetinaNetHead(channels, num_anchors, num_classes)
    if in_channels != channels:
        head.classification_head.conv[0] = _tower_entry(in_channels, channels)
        head.regression_head.conv[0] = _tower_entry(in_channels, channels)
    for tower in (head.classification_head, head.regression_head):
        tower.conv = tower.conv[:convs]
    return head

