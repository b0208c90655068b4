"""CSRNet (Li, Zhang & Chen, CVPR 2018) behind leanvision's counting contract.

A stride-8 front end (VGG-16's first 10 convolutions, or a dilated MobileNetV2), then a
back end of dilated 3x3 convolutions (CSRNet's configuration "B": 512, 512, 512, 256, 128,
64 channels, dilation 2) and a 1x1 convolution to one channel: the density map at 1/8 of
the input resolution. The count is its sum.

| member                         | meaning                                                       |
|--------------------------------|---------------------------------------------------------------|
| `forward(images)`              | normalised (N, 3, H, W) -> density (N, 1, ceil(H/8), ceil(W/8)); exported |
| `compute_loss(images, targets)`| {"density_mse": scalar}; targets carry `density` (1, h, w) maps |
| `predict(images)`              | list of `core.DensityMap` in input pixels (stride 8)          |
| `card(...)`                    | task count, output stride 8, output `density` N,1,H,W         |
| `parts`                        | backbone = front end, head = back end + output convolution    |
| `density`                      | the `DensitySpec` its training targets are drawn with         |
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar, Self

import torch
from torch import nn

from leanvision.core.card import InputSpec, ModelCard, OutputSpec, neutral_pad
from leanvision.core.config import Config
from leanvision.core.density import DensityMap, DensitySpec
from leanvision.core.enums import ResizeMode, Task
from leanvision.core.errors import ConfigError, DataError
from leanvision.models.backbones.dense import FrontEnd

# ImageNet statistics on 0-255 RGB, the normalisation torchvision's classifiers were trained with.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
OUTPUT_NAME = "density"
# S3's deployed model input, (height, width).
S3_INPUT = (576, 768)


@dataclasses.dataclass(frozen=True)
class CsrnetOptions(Config):
    """Everything a CSRNet variant accepts as a `create_model` override.

    Attributes:
        backend_channels: widths of the dilated 3x3 back-end convolutions (CSRNet B:
            512, 512, 512, 256, 128, 64).
        dilation: dilation of every back-end convolution (CSRNet B: 2).
        batch_norm: BatchNorm after every convolution of the front end (VGG: `vgg16_bn`)
            and back end. CSRNet has none (it starts from ImageNet VGG-16 weights);
            training from scratch needs it.
        density: how the training targets are drawn from head points (kernel, sigma,
            beta, k): part of the method, like RetinaNet's matching thresholds.
    """

    backend_channels: tuple[int, ...] = (512, 512, 512, 256, 128, 64)
    dilation: int = 2
    batch_norm: bool = False
    density: DensitySpec = dataclasses.field(default_factory=DensitySpec)

    def __post_init__(self) -> None:
        if not self.backend_channels or min(self.backend_channels) <= 0:
            raise ValueError(f"backend_channels must be positive widths, got {list(self.backend_channels)}")
        if self.dilation < 1:
            raise ValueError(f"dilation must be at least 1, got {self.dilation}")

    @classmethod
    def for_variant(cls, name: str, overrides: Mapping[str, object], **defaults: object) -> Self:
        """The variant's `defaults` updated by the user's `overrides`; unknown keys raise ConfigError."""
        return cls.from_dict({**defaults, **overrides}, where=name)


def dilated_backend(in_channels: int, options: CsrnetOptions) -> nn.Sequential:
    """3x3 convolutions with `options.dilation` (padding keeps the size), ReLU after each,
    then the 1x1 output convolution to one density channel (no activation: CSRNet's)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for width in options.backend_channels:
        d = options.dilation
        layers.append(nn.Conv2d(channels, width, 3, padding=d, dilation=d, bias=not options.batch_norm))
        if options.batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU(inplace=True))
        channels = width
    layers.append(nn.Conv2d(channels, 1, 1))
    return nn.Sequential(*layers)


def _init_backend(head: nn.Sequential) -> None:
    """CSRNet's initialisation of the new layers: normal(std 0.01) weights, zero biases."""
    for module in head.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _check_targets(targets: Sequence[Mapping[str, torch.Tensor]], shape: torch.Size) -> torch.Tensor:
    """The targets' density maps stacked (N, 1, h, w), or DataError naming the mismatch."""
    if len(targets) != shape[0]:
        raise DataError(f"{len(targets)} targets for {shape[0]} images")
    maps = []
    for i, target in enumerate(targets):
        density = target.get("density")
        if density is None or tuple(density.shape) != tuple(shape[1:]):
            got = None if density is None else tuple(density.shape)
            raise DataError(f"target {i}: density must be {tuple(shape[1:])} (the model's output), got {got}")
        maps.append(density)
    return torch.stack(maps).to(torch.float32)


class CSRNet(nn.Module):
    """A counting model: `backbone` (stride-8 front end) -> `head` (dilated back end + 1x1).

    Args:
        backbone: images -> (N, C, H/8, W/8) features.
        head: features -> (N, 1, H/8, W/8) density.
        name: registry name, written into the model card.
        density: how its training targets are drawn.
    """

    task: ClassVar[Task] = Task.COUNT
    parts: ClassVar[Mapping[str, str]] = MappingProxyType({"backbone": "backbone", "head": "head"})
    output_stride: ClassVar[int] = 8

    def __init__(self, backbone: FrontEnd, head: nn.Sequential, *, name: str, density: DensitySpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.name = name
        self.density = density
        self.num_classes = 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, 1, ceil(H/8), ceil(W/8)) objects per cell."""
        return self.head(self.backbone(images))

    def compute_loss(self, images: torch.Tensor, targets: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """CSRNet's loss: squared error summed over the cells of each map, halved and
        averaged over the batch, L = 1/(2N) sum_i ||Z(X_i) - Z_i||^2 (eq. 1 of the paper).

        Summed, not averaged over cells: a map has thousands of cells that are mostly ~0,
        and the mean would scale the gradient by 1/cells (1/6912 at 576 x 768), making the
        learning rate depend on the input size.

        Args:
            images: (N, 3, H, W) normalised images.
            targets: per image, `density` (1, ceil(H/8), ceil(W/8)) float, sum = its count.
        """
        predicted = self(images)
        expected = _check_targets(targets, predicted.shape)
        return {"density_mse": (predicted.float() - expected).pow(2).sum() / (2 * images.shape[0])}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[DensityMap]:
        """Density maps of normalised (N, 3, H, W) images, in input pixels (stride 8); eval mode."""
        density = self(images)
        return [DensityMap(d[0].float().numpy(), self.output_stride) for d in density]

    def card(
        self,
        *,
        class_names: Sequence[str] = ("object",),
        input_size: tuple[int, int] = S3_INPUT,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        resize: ResizeMode = ResizeMode.STRETCH,
        scale: float | None = None,
    ) -> ModelCard:
        """The model card for running this model at `input_size` (H, W) pixels.

        Args:
            class_names: the one class counted.
            input_size: (height, width) of the model input (S3: 576 x 768).
            mean, std: normalisation on 0-255 RGB pixels, (pixel - mean) / std.
            resize, scale: how images are fitted to the input (`core.InputSpec`).
        """
        if len(class_names) != 1:
            raise ConfigError(f"{self.name} counts one class, got class names {list(class_names)}")
        return ModelCard(
            name=self.name,
            task=Task.COUNT,
            class_names=tuple(class_names),
            input=InputSpec(height=input_size[0], width=input_size[1], mean=mean, std=std, resize=resize, scale=scale,
                            pad_value=neutral_pad(mean)),
            outputs=(OutputSpec(OUTPUT_NAME, "N,1,H,W"),),
            output_stride=self.output_stride,
        )


FrontEndFactory = Callable[[CsrnetOptions], FrontEnd]


def build_csrnet(
    name: str,
    frontend_factory: FrontEndFactory,
    *,
    num_classes: int,
    weights_backbone: str | os.PathLike[str] | None,
    options: CsrnetOptions,
) -> CSRNet:
    """Assemble a CSRNet from a front-end factory and the variant's options.

    Args:
        name: registry name.
        frontend_factory: `factory(options) -> FrontEnd` (stride 8).
        num_classes: must be 1: the model draws one density map.
        weights_backbone: a torchvision classifier state-dict file for the front end.
        options: back end, BatchNorm, density targets.
    """
    if num_classes != 1:
        raise ConfigError(f"{name} draws one density map (one class counted): num_classes must be 1, got {num_classes}")
    backbone = frontend_factory(options)
    if weights_backbone is not None:
        backbone.load_torchvision(weights_backbone, what=f"{name} front end")
    head = dilated_backend(backbone.out_channels, options)
    _init_backend(head)
    return CSRNet(backbone, head, name=name, density=options.density)
