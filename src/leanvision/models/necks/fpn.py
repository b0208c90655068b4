"""RetinaNet's feature pyramid: torchvision `FeaturePyramidNetwork` over C3-C5 plus P6/P7."""

from __future__ import annotations

import enum

from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelP6P7


class P6Source(enum.StrEnum):
    """What RetinaNet's P6 convolution reads."""

    C5 = "c5"  # the backbone's last map: the RetinaNet paper, mmdet `on_input`, torchvision v2
    P5 = "p5"  # the FPN's P5: torchvision `retinanet_resnet50_fpn` (v1)


def retina_fpn(in_channels: tuple[int, ...], channels: int, *, p6_from: P6Source) -> FeaturePyramidNetwork:
    """FPN with `channels` outputs over `in_channels` (C3..C5), extended by P6 and P7.

    P6 is a 3x3 stride-2 conv on C5 or P5, P7 the same on ReLU(P6), as torchvision's
    `LastLevelP6P7`. S0's FPN cost (2.37 GMACs at 800 px for MbV2-FPN128) counts P6 on C5
    (1280 channels): on P5 it would be 2.14.
    """
    p6_channels = in_channels[-1] if p6_from is P6Source.C5 else channels
    extra = LastLevelP6P7(p6_channels, channels)
    # torchvision infers the source from equal widths; state it, so a C5 as wide as the FPN still feeds P6.
    extra.use_P5 = p6_from is P6Source.P5
    return FeaturePyramidNetwork(list(in_channels), channels, extra_blocks=extra)
