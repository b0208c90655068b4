"""A tiny randomly initialised torchvision RetinaNet, its export and its torchvision reference.

The network is torchvision's own RetinaNet (AnchorGenerator, RetinaNetHead, BoxCoder and
`postprocess_detections`) on a 4-conv backbone, so the runtime's numpy decode is compared
with torchvision's code, not with a re-implementation of it.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead

from leanvision.core import (
    AnchorSpec,
    BoxCoderSpec,
    Detections,
    InputSpec,
    ModelCard,
    OutputSpec,
    PostprocessSpec,
    Precision,
    Task,
)

SIZES = ((32,), (64,), (128,))
RATIOS = ((0.5, 1.0, 2.0),) * 3
STRIDES = (8, 16, 32)
CHANNELS = 16


class TinyBackbone(nn.Module):
    """Three feature levels at nominal strides 8, 16, 32 (stride-2, padding-1, 3x3 convs)."""

    out_channels = CHANNELS

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(8, CHANNELS, 3, 2, 1), nn.ReLU(),
        )
        self.down1 = nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 3, 2, 1), nn.ReLU())
        self.down2 = nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 3, 2, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        c3 = self.stem(x)
        c4 = self.down1(c3)
        return OrderedDict([("p3", c3), ("p4", c4), ("p5", self.down2(c4))])


def build_retinanet(num_classes: int = 2, *, seed: int = 0, score_thresh: float = 0.3) -> RetinaNet:
    """Random weights spread enough that some anchors score above `score_thresh`."""
    torch.manual_seed(seed)
    anchors = AnchorGenerator(SIZES, RATIOS)
    head = RetinaNetHead(CHANNELS, anchors.num_anchors_per_location()[0], num_classes)
    model = RetinaNet(
        TinyBackbone(), num_classes, anchor_generator=anchors, head=head,
        score_thresh=score_thresh, nms_thresh=0.5, detections_per_img=100, topk_candidates=200,
    )
    with torch.no_grad():  # torchvision's init (std 0.01) gives near-constant outputs: spread them
        for conv in model.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
        nn.init.normal_(head.regression_head.bbox_reg.weight, std=0.05)
        # ~1% of (anchor, class) pairs above 0.3 on `synthetic_images`: 3-64 detections each.
        head.classification_head.cls_logits.weight.mul_(3.0)
        head.classification_head.cls_logits.bias.fill_(-5.0)
    return model.eval()


class Body(nn.Module):
    """What is exported: normalised images -> (cls_logits (N, A, C), bbox_regression (N, A, 4))."""

    def __init__(self, model: RetinaNet) -> None:
        super().__init__()
        self.backbone, self.head = model.backbone, model.head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.head(list(self.backbone(images).values()))
        return outputs["cls_logits"], outputs["bbox_regression"]


@torch.no_grad()
def feature_sizes(model: RetinaNet, input_hw: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    features = model.backbone(torch.zeros(1, 3, *input_hw))
    return tuple(tuple(f.shape[-2:]) for f in features.values())


@torch.no_grad()
def torchvision_detect(
    model: RetinaNet, batch: np.ndarray, image_sizes: list[tuple[int, int]] | None = None
) -> list[Detections]:
    """torchvision's own decode + NMS on a normalised (N, 3, H, W) batch: input pixels.

    `image_sizes`: per image, the (height, width) of the image inside a padded batch (what
    torchvision's transform records and clips boxes to); default the whole input.
    """
    images = torch.from_numpy(np.ascontiguousarray(batch))
    features = list(model.backbone(images).values())
    head = model.head(features)
    image_list = ImageList(images, image_sizes or [tuple(images.shape[-2:])] * len(images))
    anchors = model.anchor_generator(image_list, features)
    counts = [f.shape[-2] * f.shape[-1] * model.anchor_generator.num_anchors_per_location()[0] for f in features]
    split_head = {k: list(v.split(counts, dim=1)) for k, v in head.items()}
    split_anchors = [list(a.split(counts)) for a in anchors]
    results = model.postprocess_detections(split_head, split_anchors, image_list.image_sizes)
    return [Detections(r["boxes"].numpy(), r["scores"].numpy(), r["labels"].numpy()) for r in results]


def card_for(model: RetinaNet, input_hw: tuple[int, int], *, precision: Precision = Precision.FP32) -> ModelCard:
    return ModelCard(
        name="tiny_retinanet_test",
        task=Task.DETECT,
        class_names=tuple(f"class{i}" for i in range(model.head.classification_head.num_classes)),
        input=InputSpec(height=input_hw[0], width=input_hw[1]),
        outputs=(OutputSpec("cls_logits", "N,A,C"), OutputSpec("bbox_regression", "N,A,4")),
        anchors=AnchorSpec(SIZES, RATIOS, STRIDES, feature_sizes(model, input_hw)),
        box_coder=BoxCoderSpec(weights=tuple(model.box_coder.weights), clamp=model.box_coder.bbox_xform_clip),
        postprocess=PostprocessSpec(
            score_threshold=model.score_thresh, iou_threshold=model.nms_thresh,
            topk_candidates=model.topk_candidates, max_detections=model.detections_per_img,
        ),
        precision=precision,
    )


def export_onnx(model: RetinaNet, input_hw: tuple[int, int], path: Path) -> Path:
    """ONNX with a dynamic batch axis, outputs named as the card says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        Body(model).eval(), (torch.zeros(2, 3, *input_hw),), str(path), dynamo=True, external_data=False,
        input_names=["images"], output_names=["cls_logits", "bbox_regression"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    return path


def export_model_dir(model: RetinaNet, input_hw: tuple[int, int], model_dir: Path) -> Path:
    export_onnx(model, input_hw, model_dir / "model.onnx")
    card_for(model, input_hw).save(model_dir)
    return model_dir


def synthetic_images(count: int, *, seed: int = 0) -> list[np.ndarray]:
    """Uint8 RGB images of varied sizes with bright rectangles on a noisy background."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        height, width = int(rng.integers(150, 320)), int(rng.integers(150, 320))
        if i == 0:
            height, width = 224, 200
        image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        for _ in range(4):
            x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            w, h = int(rng.integers(15, 60)), int(rng.integers(15, 60))
            image[y : y + h, x : x + w] = rng.integers(120, 255, 3, dtype=np.uint8)
        images.append(image)
    return images
