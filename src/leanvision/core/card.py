"""`ModelCard`: everything needed to use an exported model, saved beside it as JSON.

The card is the bridge between the torch world (which writes it at training, export and
quantization time) and the torch-free world (which reads it to preprocess, decode and
post-process). It is versioned: a card from a newer leanvision is refused with a clear
message rather than misread.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from leanvision.core.config import Config
from leanvision.core.enums import NmsKind, Precision, ResizeMode, Task
from leanvision.core.errors import ConfigError, ModelError
from leanvision.core.tasks import DEPLOY_TASKS

CARD_FILENAME = "model_card.json"


def neutral_pad(mean: tuple[float, float, float]) -> int:
    """The grey that normalises to ~0 (114 for ImageNet's mean), as the convolutions' own zero
    padding does: black padding (-2 after normalisation) around a tile smaller than the input
    cost the demo's detector 8 points of mAP@0.5 on its 400 px validation tiles (0.317 vs
    0.398 with this grey)."""
    return round(sum(mean) / 3)


@dataclasses.dataclass(frozen=True)
class InputSpec(Config):
    """How an image becomes the model's input tensor.

    Attributes:
        height, width: model input size in pixels.
        layout: tensor layout, "NCHW".
        color: channel order the model expects, "RGB" or "BGR".
        mean, std: per-channel normalisation applied to 0-255 pixel values:
            x = (pixel - mean) / std.
        resize: how an image (or tile) is fitted to the input size.
        scale: with resize "scale", model-input pixels per image pixel, the scale the model
            was trained at (S0: 0.5, 1600 px windows of a slide become 800 px inputs). A large
            image is tiled into windows of input / scale pixels at this scale.
        pad_value: pixel value of letterbox padding, before normalisation (the models
            write `neutral_pad(mean)`; 0 in cards from before that).
        dtype: element type the model takes, "float32" or "uint8" (normalisation in-graph).
    """

    height: int
    width: int
    layout: str = "NCHW"
    color: str = "RGB"
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    resize: ResizeMode = ResizeMode.STRETCH
    scale: float | None = None
    pad_value: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"input size must be positive, got {self.height}x{self.width}")
        if (self.resize is ResizeMode.SCALE) != (self.scale is not None):
            raise ValueError("input.scale is given exactly when resize is 'scale'")
        if self.scale is not None and not 0 < self.scale <= 8:
            raise ValueError(f"input.scale must be in (0, 8], got {self.scale}")
        if self.layout != "NCHW":
            raise ValueError(f"layout {self.layout!r} is not supported (NCHW only)")
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"color must be RGB or BGR, got {self.color!r}")

    @property
    def window(self) -> tuple[int, int]:
        """(height, width) of the image region one model input covers at the card's scale."""
        if self.scale is None:
            return self.height, self.width
        return round(self.height / self.scale), round(self.width / self.scale)


@dataclasses.dataclass(frozen=True)
class OutputSpec(Config):
    """One named model output and its layout, e.g. name="cls_logits", layout="N,A,C"."""

    name: str
    layout: str


@dataclasses.dataclass(frozen=True)
class AnchorSpec(Config):
    """Anchor generator parameters (torchvision AnchorGenerator semantics).

    Attributes:
        sizes: per feature level, the anchor sizes in input pixels.
        aspect_ratios: per feature level, h/w ratios.
        strides: per feature level, nominal input pixels per feature cell (8, 16, ...).
        feature_sizes: per feature level, the (height, width) of the feature map at the
            card's input size, as measured at export. torchvision places anchors with the
            stride `input_size // feature_size` (61, not 64, for a 13-cell P6 at 800 px);
            decoding with these sizes reproduces it exactly.
    """

    sizes: tuple[tuple[float, ...], ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    strides: tuple[int, ...]
    feature_sizes: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if not len(self.sizes) == len(self.aspect_ratios) == len(self.strides):
            raise ValueError("anchor sizes, aspect_ratios and strides need one entry per level")
        if self.feature_sizes is not None and len(self.feature_sizes) != len(self.strides):
            raise ValueError("feature_sizes needs one (height, width) per level")


@dataclasses.dataclass(frozen=True)
class BoxCoderSpec(Config):
    """Box regression decoding (torchvision BoxCoder): weights and the dw/dh clamp."""

    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    clamp: float = 4.135166556742356  # log(1000 / 16), torchvision's bbox_xform_clip


@dataclasses.dataclass(frozen=True)
class PostprocessSpec(Config):
    """Detection post-processing defaults; every one can be overridden at predict time."""

    score_threshold: float = 0.05
    nms: NmsKind = NmsKind.HARD
    iou_threshold: float = 0.5
    topk_candidates: int = 1000
    max_detections: int = 300
    class_agnostic: bool = False


@dataclasses.dataclass(frozen=True)
class ModelCard(Config):
    """The model's contract with everything that runs it. Saved as `model_card.json`.

    Attributes:
        name: registry name of the architecture, e.g. "retinanet_mbv2_slim".
        task: what the model does.
        class_names: label index -> name.
        input: preprocessing to apply before the model.
        outputs: output tensors in order.
        anchors, box_coder: detection decode parameters (None for other tasks).
        output_stride: input pixels per output cell for dense tasks (count, segment).
        postprocess: detection thresholds and NMS.
        precision: numeric precision of the weights/compute.
        metrics: figures measured at training, export or quantization time.
        layer_groups: named groups of the exported graph's nodes (e.g. "backbone", "fpn",
            "head") as regular expressions on node names, so that tools can address a
            part of the model (`quantize --keep-fp32 fpn`) whatever the exporter named them.
        provenance: where it came from (checkpoint, versions, dates), free-form strings.
        class_counts: training images per class (classification: `val` splits the classes
            into head / medium / tail by them); empty where not recorded.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    name: str
    task: Task
    class_names: tuple[str, ...]
    input: InputSpec
    outputs: tuple[OutputSpec, ...] = ()
    anchors: AnchorSpec | None = None
    box_coder: BoxCoderSpec | None = None
    output_stride: int | None = None
    postprocess: PostprocessSpec = PostprocessSpec()
    precision: Precision = Precision.FP32
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    layer_groups: dict[str, str] = dataclasses.field(default_factory=dict)
    provenance: dict[str, str] = dataclasses.field(default_factory=dict)
    class_counts: tuple[int, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.class_names:
            raise ValueError("class_names is empty")
        needs = DEPLOY_TASKS[self.task].card_needs if self.task in DEPLOY_TASKS else ()
        if any(getattr(self, name) is None for name in needs):
            raise ValueError(f"a {self.task} card needs {' and '.join(needs)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        version = data.get("schema_version", cls.SCHEMA_VERSION)
        if not isinstance(version, int) or version > cls.SCHEMA_VERSION:
            raise ConfigError(
                f"model card schema version {version!r} is newer than this leanvision "
                f"understands ({cls.SCHEMA_VERSION}); upgrade leanvision"
            )
        return super().from_dict(data, where=where)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a card from a JSON file or from the model directory holding one."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, CARD_FILENAME)
        if not os.path.exists(path):
            raise ModelError("model card not found (expected model_card.json beside the model)", path=path)
        try:
            return cls.from_json(path)
        except ConfigError as exc:
            raise ModelError(exc.message, path=path) from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to a JSON file, or to `model_card.json` inside a directory."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, CARD_FILENAME)
        self.to_json(path)

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)
