"""RetinaNet as three parts (backbone, FPN, head) behind leanvision's detection contract.

Every piece is torchvision's: the classifier bodies, `FeaturePyramidNetwork` with
`LastLevelP6P7`, `RetinaNetHead`, `AnchorGenerator`, `Matcher` (per image) and `BoxCoder`;
torchvision's focal + L1 losses are computed over the whole batch at once (`retina_loss`).
What leanvision adds is the shape of the module: `forward` is the exportable
network body (normalised images in, per-anchor logits and deltas out, no resizing, no
decoding), and decoding, losses and the model card are separate methods.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar, Self

import torch
from torch import nn
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import FeaturePyramidNetwork

from leanvision.core.card import (
    AnchorSpec,
    BoxCoderSpec,
    InputSpec,
    ModelCard,
    OutputSpec,
    PostprocessSpec,
    neutral_pad,
)
from leanvision.core.config import Config
from leanvision.core.detections import Detections
from leanvision.core.enums import NmsKind, ResizeMode, Task
from leanvision.core.errors import ConfigError, DataError
from leanvision.models.backbones.torchvision import IMAGENET_MEAN, IMAGENET_STD, Backbone
from leanvision.models.heads.retina import retina_head
from leanvision.models.meta import meta_copy, meta_input
from leanvision.models.necks.fpn import P6Source, retina_fpn
from leanvision.models.tasks.detect.postprocess import decode_detections
from leanvision.models.tasks.detect.retina_loss import retina_losses

# torchvision's RetinaNet anchors: 3 octave scales (int-truncated as torchvision does) x 3 ratios.
DEFAULT_ANCHOR_SIZES = tuple(
    (float(x), float(int(x * 2 ** (1.0 / 3))), float(int(x * 2 ** (2.0 / 3)))) for x in (32, 64, 128, 256, 512)
)
DEFAULT_ASPECT_RATIOS = ((0.5, 1.0, 2.0),) * 5
PYRAMID_LEVELS = 5  # P3..P7


@dataclasses.dataclass(frozen=True)
class RetinaNetOptions(Config):
    """Everything a RetinaNet variant accepts as a `create_model` override.

    Attributes:
        backbone: a timm model name replacing the variant's backbone (`features_only`,
            C3-C5 at strides 8/16/32), e.g. "resnet18"; None keeps the variant's.
        fpn_channels: FPN width (torchvision 256; S0's slim model 128).
        head_channels: width of each head tower (torchvision 256; S0's slim model 64).
        head_convs: 3x3 conv + ReLU layers per head tower before its predictor (torchvision
            and S0: 4; YOLOv8's branches have 2).
        p6_from: whether P6 reads C5 or P5.
        anchor_sizes: per level P3..P7, anchor sizes in input pixels.
        aspect_ratios: per level, anchor h/w ratios.
        trainable_backbone_layers: backbone stages left trainable, counted from the end;
            None trains them all (S0 fine-tunes the whole backbone).
        frozen_bn: replace the backbone's BatchNorm by FrozenBatchNorm2d. S0 trains BN.
        fg_iou_threshold, bg_iou_threshold: anchor matching (torchvision 0.5 / 0.4).
        score_threshold, iou_threshold, topk_candidates, max_detections: decoding defaults.
    """

    backbone: str | None = None
    fpn_channels: int = 256
    head_channels: int = 256
    head_convs: int = 4
    p6_from: P6Source = P6Source.C5
    anchor_sizes: tuple[tuple[float, ...], ...] = DEFAULT_ANCHOR_SIZES
    aspect_ratios: tuple[tuple[float, ...], ...] = DEFAULT_ASPECT_RATIOS
    trainable_backbone_layers: int | None = None
    frozen_bn: bool = False
    fg_iou_threshold: float = 0.5
    bg_iou_threshold: float = 0.4
    score_threshold: float = 0.05
    iou_threshold: float = 0.5
    topk_candidates: int = 1000
    max_detections: int = 300

    def __post_init__(self) -> None:
        if self.fpn_channels <= 0 or self.head_channels <= 0:
            raise ValueError("fpn_channels and head_channels must be positive")
        if not 1 <= self.head_convs <= 4:
            raise ValueError(f"head_convs must be 1 to 4 (torchvision's towers have 4), got {self.head_convs}")
        if not len(self.anchor_sizes) == len(self.aspect_ratios) == PYRAMID_LEVELS:
            raise ValueError(f"anchor_sizes and aspect_ratios need {PYRAMID_LEVELS} entries, one per level P3..P7")
        per_cell = {len(s) * len(r) for s, r in zip(self.anchor_sizes, self.aspect_ratios, strict=True)}
        if len(per_cell) != 1:
            raise ValueError("every level needs the same number of anchors per cell (the head is shared)")
        if not 0.0 <= self.bg_iou_threshold <= self.fg_iou_threshold <= 1.0:
            raise ValueError("need 0 <= bg_iou_threshold <= fg_iou_threshold <= 1")

    @classmethod
    def for_variant(cls, name: str, overrides: Mapping[str, object], **defaults: object) -> Self:
        """The variant's `defaults` updated by the user's `overrides`; unknown keys raise ConfigError."""
        return cls.from_dict({**defaults, **overrides}, where=name)

    @property
    def postprocess(self) -> PostprocessSpec:
        return PostprocessSpec(
            score_threshold=self.score_threshold, nms=NmsKind.HARD, iou_threshold=self.iou_threshold,
            topk_candidates=self.topk_candidates, max_detections=self.max_detections, class_agnostic=False,
        )


def _check_targets(targets: Sequence[Mapping[str, torch.Tensor]], batch: int, num_classes: int) -> None:
    """Raise DataError unless every target has (M, 4) boxes with x2 > x1, y2 > y1 and labels in range."""
    if len(targets) != batch:
        raise DataError(f"{len(targets)} targets for {batch} images")
    for i, target in enumerate(targets):
        boxes, labels = target["boxes"], target["labels"]
        if boxes.ndim != 2 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:1]:
            raise DataError(
                f"target {i}: boxes must be (M, 4) and labels (M,), "
                f"got {tuple(boxes.shape)} and {tuple(labels.shape)}"
            )
        if labels.dtype != torch.int64:
            raise DataError(f"target {i}: labels must be int64, got {labels.dtype}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"target {i}: labels must be in 0..{num_classes - 1}, got {labels.tolist()}")
        if (boxes[:, 2:] <= boxes[:, :2]).any():
            raise DataError(f"target {i}: a box has zero or negative width or height: {boxes.tolist()}")


class RetinaNetDetector(nn.Module):
    """RetinaNet split into `backbone`, `fpn` and `head` children.

    Args:
        backbone: images -> [C3, C4, C5].
        fpn: torchvision FPN over C3..C5 with P6/P7 extra blocks.
        head: torchvision RetinaNet head (shared over P3..P7).
        anchor_generator: anchors per level, matching the head's anchors per cell.
        name: registry name, written into the model card.
        options: matching and decoding parameters (the build options are ignored here).
    """

    task: ClassVar[Task] = Task.DETECT
    parts: ClassVar[Mapping[str, str]] = MappingProxyType({"backbone": "backbone", "fpn": "fpn", "head": "head"})

    def __init__(
        self,
        backbone: Backbone,
        fpn: FeaturePyramidNetwork,
        head: RetinaNetHead,
        anchor_generator: AnchorGenerator,
        *,
        name: str,
        options: RetinaNetOptions,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.fpn = fpn
        self.head = head
        self.anchor_generator = anchor_generator
        self.name = name
        self.num_classes: int = head.classification_head.num_classes
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.fg_iou_threshold = options.fg_iou_threshold
        self.bg_iou_threshold = options.bg_iou_threshold
        self.postprocess = options.postprocess
        self.anchor_sizes = options.anchor_sizes
        self.aspect_ratios = options.aspect_ratios
        self._part_dtype: torch.dtype | None = None

    @contextlib.contextmanager
    def autocast_parts(self, dtype: torch.dtype) -> Iterator[None]:
        """Autocast the FPN and the head to `dtype` (the Trainer's bf16 step), the backbone
        kept in fp32 and the outputs returned in fp32 for the loss.

        The dense 3x3 convolutions of FPN and head are what AMX's bf16 units speed up; the
        depthwise backbones (EfficientNet-Lite0, MobileNetV2) are not: a whole-model bf16
        step of the slim Lite0 RetinaNet ran 0.72x the fp32 one, this one 1.29x (BENCHMARKS.md).
        """
        self._part_dtype = dtype
        try:
            yield
        finally:
            self._part_dtype = None

    def _run_part(self, part: nn.Module, inputs: object) -> object:
        if self._part_dtype is None:
            return part(inputs)
        with torch.autocast("cpu", dtype=self._part_dtype):
            outputs = part(inputs)
        return type(outputs)((key, value.float()) for key, value in outputs.items())

    # -- the exported network body ------------------------------------------------------

    def forward_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) normalised images -> [P3, ..., P7], each (N, fpn_channels, h_i, w_i)."""
        c3, c4, c5 = self.backbone(images)
        pyramid = self._run_part(self.fpn, OrderedDict([("c3", c3), ("c4", c4), ("c5", c5)]))
        return list(pyramid.values())

    def forward_head(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """[P3..P7] -> (cls_logits (N, A, C), bbox_regression (N, A, 4)), levels concatenated."""
        outputs = self._run_part(self.head, features)
        return outputs["cls_logits"], outputs["bbox_regression"]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) normalised images -> (cls_logits (N, A, C), bbox_regression (N, A, 4)).

        A = sum over P3..P7 of h_i * w_i * anchors per cell, in torchvision's order
        (level, then row, column, anchor). Logits are pre-sigmoid; deltas are BoxCoder
        (dx, dy, dw, dh) relative to the anchors.
        """
        return self.forward_head(self.forward_features(images))

    # -- training and torch-side inference ----------------------------------------------

    def anchors(self, images: torch.Tensor, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per image, (A, 4) xyxy anchors in input pixels, as torchvision places them."""
        height, width = images.shape[-2:]
        return self.anchor_generator(ImageList(images, [(height, width)] * images.shape[0]), features)

    def compute_loss(
        self, images: torch.Tensor, targets: Sequence[Mapping[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """Focal classification loss and L1 box loss, as torchvision's RetinaNet (to float rounding).

        Args:
            images: (N, 3, H, W) normalised images.
            targets: per image, `boxes` (M, 4) float xyxy input pixels and `labels` (M,)
                int64; M may be 0 (a negative image: every anchor is background).

        Returns:
            {"classification": scalar, "bbox_regression": scalar}, each averaged over images.
        """
        _check_targets(targets, images.shape[0], self.num_classes)
        features = self.forward_features(images)
        cls_logits, bbox_regression = self.forward_head(features)
        # One input size per batch, so one anchor set for every image; the losses run batched.
        anchors = self.anchors(images[:1], features)[0]
        return retina_losses(
            cls_logits, bbox_regression, anchors, targets, box_coder=self.box_coder,
            fg_iou=self.fg_iou_threshold, bg_iou=self.bg_iou_threshold,
        )

    @torch.no_grad()
    def detect(
        self,
        images: torch.Tensor,
        *,
        score_threshold: float | None = None,
        iou_threshold: float | None = None,
        max_detections: int | None = None,
        image_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> list[Detections]:
        """Decode and NMS in torch, identical to torchvision's RetinaNet post-processing.

        Call in eval mode (BatchNorm uses running statistics). Thresholds default to the
        model's (`self.postprocess`).

        Args:
            images: (N, 3, H, W) normalised images.
            image_sizes: per image, the (height, width) of its content in a padded input
                (torchvision's `image_sizes`): boxes are clipped to it before NMS, as the
                runtime does. None: the whole input.

        Returns:
            Per image, boxes (K, 4) xyxy in input pixels, scores and labels, best first.
        """
        changes = {
            "score_threshold": score_threshold, "iou_threshold": iou_threshold, "max_detections": max_detections,
        }
        spec = dataclasses.replace(self.postprocess, **{k: v for k, v in changes.items() if v is not None})
        features = self.forward_features(images)
        cls_logits, bbox_regression = self.forward_head(features)
        per_cell = self.anchor_generator.num_anchors_per_location()[0]
        return decode_detections(
            cls_logits, bbox_regression, self.anchors(images, features),
            level_sizes=[f.shape[-2] * f.shape[-1] * per_cell for f in features],
            image_sizes=image_sizes or [(images.shape[-2], images.shape[-1])] * images.shape[0],
            box_coder=self.box_coder, spec=spec,
        )

    # -- the model card -----------------------------------------------------------------

    def feature_sizes(self, input_size: tuple[int, int]) -> tuple[tuple[int, int], ...]:
        """(h, w) of P3..P7 for an (H, W) input, measured by a shape-only (meta) forward."""
        features = meta_copy(self).forward_features(meta_input(*input_size))
        return tuple((f.shape[-2], f.shape[-1]) for f in features)

    def card(
        self,
        *,
        class_names: Sequence[str],
        input_size: tuple[int, int] = (800, 800),
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        resize: ResizeMode = ResizeMode.STRETCH,
        scale: float | None = None,
    ) -> ModelCard:
        """The model card for running this model at `input_size` (H, W) pixels.

        Args:
            class_names: label index -> name; as many as the head has classes.
            input_size: (height, width) of the model input.
            mean, std: normalisation on 0-255 RGB pixels, (pixel - mean) / std; None: the
                backbone's (that of its pretrained weights).
            resize, scale: how images are fitted to the input (`core.InputSpec`).
        """
        if len(class_names) != self.num_classes:
            raise ConfigError(f"{len(class_names)} class names for a {self.num_classes}-class {self.name}")
        strides = (*self.backbone.strides, 2 * self.backbone.strides[-1], 4 * self.backbone.strides[-1])
        mean = tuple(mean) if mean is not None else getattr(self.backbone, "mean", IMAGENET_MEAN)
        std = tuple(std) if std is not None else getattr(self.backbone, "std", IMAGENET_STD)
        return ModelCard(
            name=self.name,
            task=Task.DETECT,
            class_names=tuple(class_names),
            input=InputSpec(height=input_size[0], width=input_size[1], mean=mean, std=std, resize=resize, scale=scale,
                            pad_value=neutral_pad(mean)),
            outputs=(OutputSpec("cls_logits", "N,A,C"), OutputSpec("bbox_regression", "N,A,4")),
            anchors=AnchorSpec(
                sizes=self.anchor_sizes, aspect_ratios=self.aspect_ratios, strides=strides,
                feature_sizes=self.feature_sizes(input_size),
            ),
            box_coder=BoxCoderSpec(weights=self.box_coder.weights, clamp=self.box_coder.bbox_xform_clip),
            postprocess=self.postprocess,
        )


BackboneFactory = Callable[..., Backbone]


def build_retinanet(
    name: str,
    backbone_factory: BackboneFactory | None,
    *,
    num_classes: int,
    weights_backbone: str | os.PathLike[str] | None,
    options: RetinaNetOptions,
) -> RetinaNetDetector:
    """Assemble a RetinaNet from a backbone factory and the variant's options.

    Args:
        name: registry name.
        backbone_factory: `factory() -> Backbone`, or None when `options.backbone` names
            the timm model (which replaces a factory too).
        num_classes: classes scored by the head (no background class).
        weights_backbone: a classifier state-dict file for the backbone, or a name such as
            "imagenet" resolved offline (`models.pretrained`).
        options: widths, anchors, freezing, matching and decoding.
    """
    if num_classes <= 0:
        raise ConfigError(f"{name}: num_classes must be positive, got {num_classes}")
    if options.backbone is not None:
        from leanvision.models.backbones.timm import TimmBackbone

        backbone = TimmBackbone(options.backbone)
    elif backbone_factory is not None:
        backbone = backbone_factory()
    else:
        raise ConfigError(f"{name}: no backbone (give the variant a factory or a timm name in `backbone`)")
    if weights_backbone is not None:
        backbone.load_weights(weights_backbone, what=f"{name} backbone")
    if options.frozen_bn:
        backbone.freeze_norms()
    if options.trainable_backbone_layers is not None:
        backbone.freeze(options.trainable_backbone_layers)
    anchor_generator = AnchorGenerator(options.anchor_sizes, options.aspect_ratios)
    fpn = retina_fpn(backbone.out_channels, options.fpn_channels, p6_from=options.p6_from)
    head = retina_head(
        options.fpn_channels, options.head_channels,
        num_anchors=anchor_generator.num_anchors_per_location()[0], num_classes=num_classes,
        convs=options.head_convs,
    )
    return RetinaNetDetector(backbone, fpn, head, anchor_generator, name=name, options=options)
