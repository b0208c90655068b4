"""Image classifiers: any timm model by name, with S1's expanded head, behind leanvision's contract.

The body is `timm.create_model(arch, num_classes=0)` (pooled features; timm builds it, with
`attn_layer` for ResNets, e.g. CBAM); the head is leanvision's: a linear layer, or S1's
*expanded head*, features -> hidden (BN, ReLU, dropout) -> classes, which S1 measured
better than features -> classes on 2388 fine-grained products.

| member                         | meaning                                                           |
|--------------------------------|-------------------------------------------------------------------|
| `forward(images)`              | normalised (N, 3, H, W) -> logits (N, classes); exported          |
| `compute_loss(images, targets)`| {"cross_entropy": scalar}; a target is `label` (int) or `soft` (C,) |
| `predict(images)`              | list of `core.ClassProbs`                                         |
| `card(...)`                    | task classify, output `logits` N,C                                |
| `parts`                        | backbone = timm body, head = the classifier head                  |

Weights: `weights_backbone` takes a timm classifier state-dict file or a name ("imagenet")
resolved offline by `models.pretrained`; the classifier layer of the weights is dropped
(its classes are ImageNet's). Normalisation comes from timm's `pretrained_cfg`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Self

import torch
from torch import nn

from leanvision.core.card import InputSpec, ModelCard, OutputSpec, neutral_pad
from leanvision.core.config import Config
from leanvision.core.enums import ResizeMode, Task
from leanvision.core.errors import ConfigError, DataError, ModelError

OUTPUT_NAME = "logits"


@dataclasses.dataclass(frozen=True)
class ClassifierOptions(Config):
    """Everything a classifier accepts as a `create_model` override.

    Attributes:
        arch: the timm model name of the body.
        hidden: width of the expanded head's hidden layer (S1); 0 = a linear head.
        dropout: dropout before the last linear layer.
        label_smoothing: cross-entropy label smoothing (S1: 0.1).
        attention: timm's `attn_layer` for the body's blocks ("cbam", "se", "eca"; ResNet
            family only); its layers start from scratch when the weights lack them.
        drop_path: stochastic depth rate of the body (timm's `drop_path_rate`).
        trainable: "all", or "head": the body's parameters are frozen (FixRes's second stage
            fine-tunes the classifier at the test resolution; the body's BatchNorm
            statistics still follow the new resolution in training mode).
    """

    arch: str = "tf_efficientnet_lite0"
    hidden: int = 0
    dropout: float = 0.0
    label_smoothing: float = 0.0
    attention: str | None = None
    drop_path: float = 0.0
    trainable: str = "all"

    def __post_init__(self) -> None:
        if self.trainable not in ("all", "head"):
            raise ValueError(f"trainable must be 'all' or 'head', got {self.trainable!r}")
        if self.hidden < 0:
            raise ValueError(f"hidden must be >= 0 (0: a linear head), got {self.hidden}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.drop_path < 1:
            raise ValueError(f"drop_path must be in [0, 1), got {self.drop_path}")

    @classmethod
    def for_variant(cls, name: str, overrides: Mapping[str, object], **defaults: object) -> Self:
        """The variant's `defaults` updated by the user's `overrides`; unknown keys raise ConfigError."""
        return cls.from_dict({**defaults, **overrides}, where=name)


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ImportError("classifiers need timm: pip install 'leanvision[train]'") from None
    return timm


def classifier_head(in_features: int, num_classes: int, *, hidden: int, dropout: float) -> nn.Sequential:
    """features -> classes: `Linear`, or S1's expanded head Linear -> BN -> ReLU -> (dropout) -> Linear."""
    layers: list[nn.Module] = []
    width = in_features
    if hidden:
        layers += [nn.Linear(in_features, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        width = hidden
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def soft_targets(targets: Sequence[Mapping[str, Any]], num_classes: int) -> torch.Tensor | None:
    """(N, C) class distributions when the batch carries `soft` targets (mixup / cutmix), else None."""
    if not any("soft" in t for t in targets):
        return None
    rows = []
    for i, target in enumerate(targets):
        if "soft" in target:
            row = torch.as_tensor(target["soft"], dtype=torch.float32)
        else:
            row = nn.functional.one_hot(torch.as_tensor(int(target["label"])), num_classes).float()
        if row.shape != (num_classes,):
            raise DataError(f"target {i}: soft must have {num_classes} class weights, got {tuple(row.shape)}")
        rows.append(row)
    return torch.stack(rows)


def hard_labels(targets: Sequence[Mapping[str, Any]], num_classes: int) -> torch.Tensor:
    """(N,) int64 labels, or DataError naming a missing or out-of-range label."""
    labels = []
    for i, target in enumerate(targets):
        if "label" not in target:
            raise DataError(f"target {i} has no label")
        label = int(target["label"])
        if not 0 <= label < num_classes:
            raise DataError(f"target {i}: label {label} is outside 0..{num_classes - 1}")
        labels.append(label)
    return torch.tensor(labels, dtype=torch.int64)


class Classifier(nn.Module):
    """A classifier: `backbone` (timm body, pooled features) -> `head` (logits).

    Args:
        backbone: images -> (N, F) pooled features (timm, `num_classes=0`).
        head: (N, F) -> (N, classes).
        name: registry name, written into the model card.
        arch: the timm name of the body.
        label_smoothing: of the training loss.
        mean, std: the body's normalisation on 0-255 pixels (timm's `pretrained_cfg`).
    """

    task: ClassVar[Task] = Task.CLASSIFY
    parts: ClassVar[Mapping[str, str]] = MappingProxyType({"backbone": "backbone", "head": "head"})

    def __init__(self, backbone: nn.Module, head: nn.Sequential, *, name: str, arch: str, label_smoothing: float,
                 mean: tuple[float, float, float], std: tuple[float, float, float]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.name = name
        self.arch = arch
        self.label_smoothing = label_smoothing
        self.mean, self.std = mean, std
        self.num_classes = head[-1].out_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, classes) logits."""
        return self.head(self.backbone(images))

    def compute_loss(self, images: torch.Tensor, targets: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Cross-entropy with the model's label smoothing, on hard labels or on soft targets
        (mixup / cutmix distributions, smoothed the same way)."""
        if len(targets) != images.shape[0]:
            raise DataError(f"{len(targets)} targets for {images.shape[0]} images")
        soft = soft_targets(targets, self.num_classes)
        labels = hard_labels(targets, self.num_classes) if soft is None else None  # checked before the forward
        logits = self(images).float()
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        else:
            soft = soft * (1 - self.label_smoothing) + self.label_smoothing / self.num_classes
            loss = -(soft * nn.functional.log_softmax(logits, dim=1)).sum(dim=1).mean()
        return {"cross_entropy": loss}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[Any]:
        """`ClassProbs` of normalised (N, 3, H, W) images."""
        from leanvision.core.classes import ClassProbs

        return [ClassProbs(row.float().numpy()) for row in self(images)]

    def card(
        self,
        *,
        class_names: Sequence[str],
        input_size: tuple[int, int] = (224, 224),
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        resize: ResizeMode = ResizeMode.LETTERBOX,
        scale: float | None = None,
    ) -> ModelCard:
        """The model card for running this model at `input_size` (H, W) pixels.

        Args:
            class_names: one name per logit.
            input_size: (height, width) of the model input.
            mean, std: normalisation on 0-255 RGB (default: the body's, from timm).
            resize: how images are fitted to the input: letterbox (S1's structure-retention
                resize), stretch or centre crop. `scale` is for detectors' tiles; refused here.
        """
        if len(class_names) != self.num_classes:
            raise ConfigError(f"{self.name} has {self.num_classes} outputs but {len(class_names)} class names")
        if ResizeMode(resize) is ResizeMode.SCALE or scale is not None:
            raise ConfigError("resize 'scale' tiles large images for detectors; a classifier takes letterbox, "
                              "stretch or center_crop")
        mean, std = mean or self.mean, std or self.std
        return ModelCard(
            name=self.name,
            task=Task.CLASSIFY,
            class_names=tuple(class_names),
            input=InputSpec(height=input_size[0], width=input_size[1], mean=mean, std=std, resize=resize,
                            pad_value=neutral_pad(mean)),
            outputs=(OutputSpec(OUTPUT_NAME, "N,C"),),
        )


def _create_body(options: ClassifierOptions) -> nn.Module:
    timm = _timm()
    kwargs: dict[str, Any] = {"num_classes": 0}
    if options.attention:
        kwargs["block_args"] = {"attn_layer": options.attention}  # timm ResNet: per-block attention
    if options.drop_path:
        kwargs["drop_path_rate"] = options.drop_path
    try:
        return timm.create_model(options.arch, pretrained=False, **kwargs)
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise ConfigError(f"timm has no model '{options.arch}': {exc}") from None
    except TypeError as exc:  # an architecture without attn_layer / drop_path_rate
        raise ConfigError(f"timm's {options.arch} does not take attention / drop_path "
                          f"(attention is for the ResNet family): {exc}") from None


def _load_body_weights(body: nn.Module, options: ClassifierOptions, weights: str | os.PathLike[str]) -> None:
    """Load a classifier state dict (a file, or a name resolved offline) into the body, its
    ImageNet classifier dropped; only attention layers the weights lack may stay new."""
    from leanvision.models.pretrained import is_pretrained_name, load_pretrained
    from leanvision.models.weights import read_state_dict

    if is_pretrained_name(weights):
        template = _timm().create_model(options.arch, pretrained=False).state_dict()
        state = load_pretrained(options.arch, str(weights), template)
        where = f"{options.arch} '{weights}' weights"
    else:
        state = read_state_dict(weights)
        where = os.fspath(weights)
    own = body.state_dict()
    usable = {k: v for k, v in state.items() if k in own}
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in usable.items() if v.shape != own[k].shape]
    if wrong:
        raise ModelError(f"{where} do not fit {options.arch}: {wrong[0]}")
    missing = [k for k in own if k not in usable]
    if options.attention:  # CBAM / SE layers are new: the weights have none
        missing = [k for k in missing if not _is_attention(k)]
    if missing or not usable:
        raise ModelError(f"{where} do not fit {options.arch}: {len(missing)} of its tensors missing "
                         f"(first: {missing[0] if missing else '-'})")
    body.load_state_dict(usable, strict=False)


def _is_attention(key: str) -> bool:
    return ".se." in key or ".attn." in key or ".cbam" in key or ".channel." in key or ".spatial." in key


def build_classifier(name: str, *, num_classes: int, weights_backbone: str | os.PathLike[str] | None,
                     options: ClassifierOptions) -> Classifier:
    """Assemble a classifier of `num_classes` classes from its options; ImageNet or file weights
    for the body when `weights_backbone` names them."""
    if num_classes < 1:
        raise ConfigError(f"{name} needs at least 1 class, got {num_classes}")
    body = _create_body(options)
    if weights_backbone is not None:
        _load_body_weights(body, options, weights_backbone)
    # timm's pooled output: `head_hidden_size` where a pre-logits layer follows the pooling (MobileNetV3).
    width = getattr(body, "head_hidden_size", None) or body.num_features
    head = classifier_head(width, num_classes, hidden=options.hidden, dropout=options.dropout)
    if options.trainable == "head":
        body.requires_grad_(False)
    cfg = body.pretrained_cfg
    mean = tuple(255.0 * m for m in cfg["mean"])
    std = tuple(255.0 * s for s in cfg["std"])
    return Classifier(body, head, name=name, arch=options.arch, label_smoothing=options.label_smoothing,
                      mean=mean, std=std)
