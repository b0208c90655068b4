"""Registered counting models. Each is a few lines: a front end plus default options.

Every variant takes `num_classes` (1: one density map), `weights_backbone` (a local
torchvision classifier state-dict file) and `CsrnetOptions` overrides; unknown overrides
raise ConfigError.
"""

from __future__ import annotations

import os

from leanvision.models.backbones.dense import mobilenet_v2_frontend, vgg16_frontend
from leanvision.models.tasks.count.csrnet import CSRNet, CsrnetOptions, build_csrnet

Path = str | os.PathLike[str]


def csrnet(*, num_classes: int = 1, weights_backbone: Path | None = None, **overrides) -> CSRNet:
    """CSRNet "B" (S3's model): VGG-16 conv1_1-conv4_3, back end 512-512-512-256-128-64 at dilation 2.

    `weights_backbone`: torchvision's `vgg16` state dict (`vgg16_bn` with batch_norm=True).
    """
    options = CsrnetOptions.for_variant("csrnet", overrides)
    return build_csrnet("csrnet", lambda o: vgg16_frontend(batch_norm=o.batch_norm), num_classes=num_classes,
                        weights_backbone=weights_backbone, options=options)


def csrnet_mbv2(*, num_classes: int = 1, weights_backbone: Path | None = None, **overrides) -> CSRNet:
    """The fast variant: MobileNetV2 blocks 0-13 at output stride 8 (dilated), back end
    128-64-32 at dilation 2, BatchNorm throughout (MobileNetV2 has it).

    `weights_backbone`: torchvision's `mobilenet_v2` state dict.
    """
    options = CsrnetOptions.for_variant("csrnet_mbv2", overrides, backend_channels=(128, 64, 32), batch_norm=True)
    return build_csrnet("csrnet_mbv2", lambda o: mobilenet_v2_frontend(), num_classes=num_classes,
                        weights_backbone=weights_backbone, options=options)
