"""A tiny grid detector honouring the detection-model contract, to test the loop fast.

One cell per 8x8 input pixels predicts class logits and the (left, top, right, bottom)
distances of a box whose centre falls in it (FCOS-like, one positive cell per box). It
learns bright squares on a dark background in a few dozen steps at 64 px.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torchvision.ops import batched_nms, sigmoid_focal_loss

from leanvision.core import (
    AnchorSpec,
    BoxCoderSpec,
    Detections,
    InputSpec,
    ModelCard,
    ResizeMode,
    Task,
)

STRIDE = 8


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class TinyGridDetector(nn.Module):
    task = Task.DETECT
    parts: Mapping[str, str] = {"backbone": "backbone", "fpn": "neck", "head": "head"}

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.name = "tiny_grid"
        self.num_classes = num_classes
        self.backbone = nn.Sequential(_block(3, width, 2), _block(width, width, 2), _block(width, width, 2))
        self.neck = _block(width, width, 1)
        self.head = nn.Conv2d(width, num_classes + 4, 1)
        nn.init.constant_(self.head.bias[:num_classes], -2.0)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.neck(self.backbone(images)))  # (N, C + 4, h, w)
        out = out.flatten(2).transpose(1, 2)  # (N, A, C + 4)
        return out[..., : self.num_classes], out[..., self.num_classes:]

    @staticmethod
    def _centres(h: int, w: int) -> torch.Tensor:
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        return torch.stack([xs.flatten(), ys.flatten()], 1).float() * STRIDE + STRIDE / 2

    def compute_loss(self, images: torch.Tensor, targets: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        logits, deltas = self(images)
        h, w = images.shape[-2] // STRIDE, images.shape[-1] // STRIDE
        centres = self._centres(h, w)
        cls_target = torch.zeros_like(logits)
        box_losses = []
        for i, target in enumerate(targets):
            boxes, labels = target["boxes"], target["labels"]
            if not len(boxes):
                continue
            mid = (boxes[:, :2] + boxes[:, 2:]) / 2
            cells = (mid[:, 1] // STRIDE).long().clamp(0, h - 1) * w + (mid[:, 0] // STRIDE).long().clamp(0, w - 1)
            cls_target[i, cells, labels] = 1.0
            c = centres[cells]
            ltrb = torch.cat([c - boxes[:, :2], boxes[:, 2:] - c], 1).clamp(min=1.0)
            box_losses.append((deltas[i, cells] - torch.log(ltrb / STRIDE)).abs().sum(1))
        positives = max(1, int(cls_target.sum()))
        cls_loss = sigmoid_focal_loss(logits, cls_target, reduction="sum") / positives
        box_loss = torch.cat(box_losses).sum() / positives if box_losses else deltas.sum() * 0.0
        return {"classification": cls_loss, "bbox_regression": box_loss}

    @torch.no_grad()
    def detect(self, images: torch.Tensor, *, score_threshold: float = 0.05) -> list[Detections]:
        logits, deltas = self(images)
        centres = self._centres(images.shape[-2] // STRIDE, images.shape[-1] // STRIDE)
        results = []
        for image_logits, image_deltas in zip(logits, deltas, strict=True):
            scores, labels = image_logits.sigmoid().max(1)
            keep = scores > score_threshold
            ltrb = image_deltas[keep].clamp(max=6).exp() * STRIDE
            boxes = torch.cat([centres[keep] - ltrb[:, :2], centres[keep] + ltrb[:, 2:]], 1)
            kept = batched_nms(boxes, scores[keep], labels[keep], 0.5)
            results.append(Detections(boxes[kept].numpy(), scores[keep][kept].numpy(), labels[keep][kept].numpy()))
        return results

    def card(self, *, class_names: Sequence[str], input_size: tuple[int, int] = (64, 64),
             resize: ResizeMode = ResizeMode.STRETCH, scale: float | None = None) -> ModelCard:
        return ModelCard(
            name=self.name, task=Task.DETECT, class_names=tuple(class_names),
            input=InputSpec(height=input_size[0], width=input_size[1], resize=resize, scale=scale),
            anchors=AnchorSpec(sizes=((float(STRIDE),),), aspect_ratios=((1.0,),), strides=(STRIDE,)),
            box_coder=BoxCoderSpec(),
        )


def squares_image(rng: np.random.Generator, size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) uint8 dark noise with `count` bright squares; their (count, 4) xyxy boxes."""
    image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    boxes = []
    for _ in range(count):
        side = int(rng.integers(size // 6, size // 3))
        x, y = (int(v) for v in rng.integers(0, size - side, 2))
        image[y: y + side, x: x + side] = rng.integers(180, 255, 3, dtype=np.uint8)
        boxes.append([x, y, x + side, y + side])
    return image, np.array(boxes, np.float32).reshape(-1, 4)
