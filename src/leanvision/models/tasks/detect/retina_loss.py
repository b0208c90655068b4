"""RetinaNet's focal and L1 losses over a whole batch at once, equal to torchvision's per-image loop.

Written by hand because torchvision's `RetinaNetHead.compute_loss` runs image by image (a
Python loop of boolean-indexed copies per image); every image of a batch shares one anchor
set (one input size), so both losses become a few ops over (N, A). Matching stays
torchvision's `Matcher`, per image. The result equals torchvision's to float rounding:
tests/models/test_retinanet.py compares losses and gradients against the per-image loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torchvision.models.detection._utils import BoxCoder, Matcher
from torchvision.ops import box_iou, sigmoid_focal_loss

BACKGROUND = Matcher.BELOW_LOW_THRESHOLD  # -1
IGNORED = Matcher.BETWEEN_THRESHOLDS  # -2: IoU between the thresholds


def pad_targets(targets: Sequence[Mapping[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image boxes and labels -> (N, G, 4) boxes and (N, G) labels, G the most boxes of an image."""
    most = max((len(t["labels"]) for t in targets), default=0)
    boxes = torch.zeros((len(targets), most, 4))
    labels = torch.zeros((len(targets), most), dtype=torch.int64)
    for i, target in enumerate(targets):
        boxes[i, : len(target["labels"])] = target["boxes"]
        labels[i, : len(target["labels"])] = target["labels"]
    return boxes, labels


def match_anchors(
    targets: Sequence[Mapping[str, torch.Tensor]], anchors: torch.Tensor, *, fg_iou: float, bg_iou: float,
) -> torch.Tensor:
    """torchvision's `Matcher(fg_iou, bg_iou, allow_low_quality_matches=True)`, image by image.

    Matching stays per image: one image's (M, A) IoU matrix stays in cache, the batch's
    padded (N, G, A) one does not (measured 1.5x slower at 400x400, benchmarks/detect_loss.py).

    Returns:
        (N, A) int64: per anchor the index of its box within its image, -1 background, -2 ignored.
    """
    matcher = Matcher(fg_iou, bg_iou, allow_low_quality_matches=True)
    matches = torch.full((len(targets), anchors.shape[0]), BACKGROUND, dtype=torch.int64)
    for i, target in enumerate(targets):
        if len(target["boxes"]):
            matches[i] = matcher(box_iou(target["boxes"], anchors))
    return matches


def retina_losses(
    cls_logits: torch.Tensor,
    bbox_regression: torch.Tensor,
    anchors: torch.Tensor,
    targets: Sequence[Mapping[str, torch.Tensor]],
    *,
    box_coder: BoxCoder,
    fg_iou: float,
    bg_iou: float,
) -> dict[str, torch.Tensor]:
    """Focal classification loss and L1 box loss as torchvision's `RetinaNetHead.compute_loss`.

    Each image's sums are divided by its number of foreground anchors (at least 1), then the
    images are averaged; ignored anchors (IoU between the thresholds) add no classification loss.

    Args:
        cls_logits: (N, A, C) logits; bbox_regression: (N, A, 4) BoxCoder deltas.
        anchors: (A, 4) xyxy anchors shared by the batch.
        targets: per image, `boxes` (M, 4) xyxy and `labels` (M,) int64; M may be 0.
    """
    boxes, labels = pad_targets(targets)
    matches = match_anchors(targets, anchors, fg_iou=fg_iou, bg_iou=bg_iou)
    foreground = matches >= 0
    per_image_fg = foreground.sum(dim=1).clamp(min=1).to(cls_logits.dtype)
    image_idx, anchor_idx = foreground.nonzero(as_tuple=True)
    box_idx = matches[image_idx, anchor_idx]

    target_classes = torch.zeros_like(cls_logits)
    target_classes[image_idx, anchor_idx, labels[image_idx, box_idx]] = 1.0
    focal = sigmoid_focal_loss(cls_logits, target_classes, reduction="none")
    focal = focal.sum(dim=2).masked_fill(matches == IGNORED, 0.0).sum(dim=1)

    target_deltas = box_coder.encode_single(boxes[image_idx, box_idx], anchors[anchor_idx])
    l1 = (bbox_regression[image_idx, anchor_idx] - target_deltas).abs().sum(dim=1)
    box_loss = torch.zeros(cls_logits.shape[0], dtype=l1.dtype).index_add_(0, image_idx, l1)
    return {
        "classification": (focal / per_image_fg).mean(),
        "bbox_regression": (box_loss / per_image_fg).mean(),
    }
