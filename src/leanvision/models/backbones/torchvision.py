"""C3-C5 feature extractors built from torchvision classifiers (MobileNetV2, ResNet-50).

The classifier is built with `weights=None` (nothing downloads); ImageNet weights come from
a local torchvision state-dict file, or a name ("imagenet") resolved offline by
`models.pretrained`, through `Backbone.load_weights`. `Backbone` is also the base of the
timm backbones (`backbones.timm`): one contract for freezing, weights and normalisation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import torch
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter

from leanvision.core.errors import ConfigError
from leanvision.models.pretrained import is_pretrained_name, load_pretrained
from leanvision.models.weights import StateDict, load_checked, read_state_dict

NormLayer = Callable[[int], nn.Module]

# ImageNet statistics on 0-255 RGB, the normalisation torchvision's classifiers were trained with.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class Backbone(nn.Module):
    """Runs a torchvision classifier's body and returns its C3, C4, C5 maps.

    Args:
        body: the classifier's layers up to C5, tapping the three outputs.
        out_channels: channels of C3, C4, C5.
        stage_starts: names of the `body` children that start each stage, input first;
            `freeze` counts trainable stages from the end, as torchvision does.
        source_prefix: key prefix of the body's layers in the classifier's state dict
            ("features." for MobileNetV2, "" for ResNet).
        source_ignored: state-dict prefixes of the classifier's own head ("fc.", ...).
        arch: the classifier's name (torchvision or timm), for named weights.
        mean, std: the normalisation on 0-255 RGB pixels its pretrained weights expect
            (the model card carries it to deployment).
    """

    strides: tuple[int, int, int] = (8, 16, 32)

    def __init__(
        self,
        body: nn.Module,
        *,
        out_channels: tuple[int, int, int],
        stage_starts: tuple[str, ...],
        source_prefix: str,
        source_ignored: tuple[str, ...],
        arch: str,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.body = body
        self.out_channels = out_channels
        self.stage_starts = stage_starts
        self.arch = arch
        self.mean, self.std = tuple(mean), tuple(std)
        self._source_prefix = source_prefix
        self._source_ignored = source_ignored

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) normalised images -> [C3, C4, C5], each (N, C_i, H/s_i, W/s_i)."""
        return list(self.body(images).values())

    def units(self) -> list[str]:
        """Names of the body's modules in forward order, one per stage part (stage starts
        are among them)."""
        names = []
        for name, child in self.body.named_children():
            if isinstance(child, nn.Sequential) and f"{name}.0" in self.stage_starts:
                names.extend(f"{name}.{i}" for i in range(len(child)))
            else:
                names.append(name)
        return names

    def freeze_norms(self) -> None:
        """Every BatchNorm becomes FrozenBatchNorm2d (running statistics, fixed scale and shift):
        for small batches on a pretrained backbone, as torchvision's detectors do. Each is
        folded into the convolution before it while training (`models.fold`), trainable or
        not: no BatchNorm pass forward or backward (BENCHMARKS.md)."""
        from timm.layers import freeze_batch_norm_2d

        from leanvision.models.fold import fold_frozen_norms

        self.body = freeze_batch_norm_2d(self.body)
        fold_frozen_norms(self.body)

    def freeze(self, trainable_stages: int) -> None:
        """Freeze all but the last `trainable_stages` stages (0 freezes all): no gradients,
        and their BatchNorm layers become FrozenBatchNorm2d (running statistics, as
        torchvision and detectron2 freeze early stages). Fewer backward passes through the
        high-resolution stages: training the slim RetinaNet with the stem and first stage
        frozen ran 1.5x the images/s (BENCHMARKS.md). Their BatchNorm layers are folded into
        the convolutions before them while training (`models.fold`): 1.16-1.33x more."""
        from timm.layers import freeze_batch_norm_2d

        from leanvision.models.fold import fold_frozen_norms

        if not 0 <= trainable_stages <= len(self.stage_starts):
            raise ConfigError(
                f"trainable_backbone_layers must be in 0..{len(self.stage_starts)}, got {trainable_stages}"
            )
        names = self.units()
        first = len(names) if trainable_stages == 0 else names.index(self.stage_starts[-trainable_stages])
        for name in names[:first]:
            parent_name, _, child_name = name.rpartition(".")
            parent = self.body.get_submodule(parent_name) if parent_name else self.body
            frozen = freeze_batch_norm_2d(parent.get_submodule(child_name)).requires_grad_(False)
            parent.register_module(child_name, frozen)
        fold_frozen_norms(self.body)

    def from_torchvision(self, state: Mapping[str, torch.Tensor]) -> StateDict:
        """Rename a torchvision classifier state dict to this module's keys, dropping its head."""
        body = {}
        for key, value in state.items():
            if key.startswith(self._source_ignored):
                continue
            name = key.removeprefix(self._source_prefix) if key.startswith(self._source_prefix) else key
            body[f"body.{name}"] = value
        return body

    def load_weights(self, weights: str | os.PathLike[str], *, what: str) -> None:
        """Load a torchvision classifier state-dict file (e.g. `mobilenet_v2-b0353104.pth`), or
        named weights ("imagenet") found offline (`models.pretrained`)."""
        if is_pretrained_name(weights):
            state = load_pretrained(self.arch, str(weights), self.classifier_template())
        else:
            state = read_state_dict(weights)
        load_checked(self, self.from_torchvision(state), path=weights, what=what)

    def classifier_template(self) -> StateDict:
        """The whole classifier's state dict (random weights): the keys named weights map onto."""
        return getattr(torchvision.models, self.arch)(weights=None).state_dict()


def mobilenet_v2_c3c5(*, norm_layer: NormLayer = nn.BatchNorm2d) -> Backbone:
    """MobileNetV2 `features`: C3 after block 6 (32 ch), C4 after 13 (96), C5 after 18 (1280).

    Stages start at the stem and at every stride-2 block, as torchvision's
    `_mobilenet_extractor` counts them (6 stages).
    """
    features = torchvision.models.mobilenet_v2(weights=None, norm_layer=norm_layer).features
    starts = ["0"] + [name for name, block in features.named_children() if getattr(block, "_is_cn", False)]
    starts.append(str(len(features) - 1))
    body = IntermediateLayerGetter(features, return_layers={"6": "c3", "13": "c4", "18": "c5"})
    return Backbone(
        body, out_channels=(32, 96, 1280), stage_starts=tuple(starts),
        source_prefix="features.", source_ignored=("classifier.",), arch="mobilenet_v2",
    )


def resnet50_c3c5(*, norm_layer: NormLayer = nn.BatchNorm2d) -> Backbone:
    """ResNet-50: C3 = layer2 (512 ch), C4 = layer3 (1024), C5 = layer4 (2048).

    Stages as torchvision's `_resnet_fpn_extractor`: stem (conv1, bn1), layer1..layer4.
    """
    resnet = torchvision.models.resnet50(weights=None, norm_layer=norm_layer)
    body = IntermediateLayerGetter(resnet, return_layers={"layer2": "c3", "layer3": "c4", "layer4": "c5"})
    return Backbone(
        body, out_channels=(512, 1024, 2048), stage_starts=("conv1", "layer1", "layer2", "layer3", "layer4"),
        source_prefix="", source_ignored=("fc.",), arch="resnet50",
    )
