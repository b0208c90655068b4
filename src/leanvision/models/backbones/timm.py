"""C3-C5 feature extractors from any timm model (`features_only`), by timm name.

Channels and strides come from timm's `feature_info`; the normalisation from the model's
`pretrained_cfg` (timm's mean/std, scaled to 0-255 pixels), so a backbone trained from
scratch is normalised as its pretrained weights would be. The model is built with
`pretrained=False` (nothing downloads); weights come from `load_weights`: a local file or
a name resolved offline by `models.pretrained`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from leanvision.core.errors import ConfigError
from leanvision.models.backbones.torchvision import Backbone
from leanvision.models.weights import StateDict

# The classifier's own layers that `features_only` drops (EfficientNet, MobileNet, ResNet).
_HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.", "fc.", "head.", "global_pool.")


def _timm():
    try:
        import timm
    except ImportError:
        raise ImportError("timm backbones need timm: pip install 'leanvision[train]'") from None
    return timm


class TimmBackbone(Backbone):
    """A timm model's `features_only` body returning [C3, C4, C5].

    Args:
        arch: timm model name, e.g. "tf_efficientnet_lite0".
        out_indices: which of timm's feature levels are C3, C4, C5 (strides 8, 16, 32).
    """

    def __init__(self, arch: str, *, out_indices: tuple[int, int, int] = (2, 3, 4)) -> None:
        timm = _timm()
        try:
            body = timm.create_model(arch, pretrained=False, features_only=True, out_indices=out_indices)
        except RuntimeError as exc:  # timm: "Unknown model (...)"
            raise ConfigError(f"timm has no model '{arch}': {exc}") from None
        info = body.feature_info
        if tuple(info.reduction()) != (8, 16, 32):
            raise ConfigError(f"{arch}: feature levels {out_indices} have strides {info.reduction()}, "
                              "RetinaNet needs 8, 16, 32")
        cfg = body.pretrained_cfg
        super().__init__(
            body, out_channels=tuple(info.channels()), stage_starts=_stage_starts(body),
            source_prefix="", source_ignored=_HEAD_PREFIXES, arch=arch,
            mean=tuple(255.0 * m for m in cfg["mean"]), std=tuple(255.0 * s for s in cfg["std"]),
        )

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) normalised images -> [C3, C4, C5]."""
        return list(self.body(images))

    def from_torchvision(self, state: Mapping[str, torch.Tensor]) -> StateDict:
        """A timm classifier state dict (same key names) without its head, keyed for this module."""
        return {f"body.{k}": v for k, v in state.items() if not k.startswith(self._source_ignored)}

    def classifier_template(self) -> StateDict:
        """The timm classifier's state dict (random weights): the keys named weights map onto."""
        return _timm().create_model(self.arch, pretrained=False).state_dict()


def _stage_starts(body: nn.Module) -> tuple[str, ...]:
    """The stem, then each block stage (`blocks.0`, ...; ResNet `layer1`...): freezing counts
    stages from the end."""
    names = [name for name, _ in body.named_children()]
    stages = []
    for name in names:
        child = body.get_submodule(name)
        if isinstance(child, nn.Sequential) and name == "blocks":
            stages.extend(f"blocks.{i}" for i in range(len(child)))
        elif name.startswith("layer") or not stages:
            stages.append(name)
    return tuple(stages)
