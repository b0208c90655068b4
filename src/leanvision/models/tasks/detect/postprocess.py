"""RetinaNet decode + NMS in torch, step for step as torchvision's `postprocess_detections`.

Per image and per level: sigmoid scores above the threshold, the top-k of them, box
decoding against their anchors, clipping to the input; then class-aware NMS over all
levels and the best `max_detections`. Written out (rather than calling torchvision's
method) so thresholds can change per call; tests check it equals torchvision's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import boxes as box_ops

from leanvision.core.card import PostprocessSpec
from leanvision.core.detections import Detections


def _level_candidates(
    logits: torch.Tensor, regression: torch.Tensor, anchors: torch.Tensor, *,
    image_size: tuple[int, int], box_coder: BoxCoder, spec: PostprocessSpec,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One level of one image: (boxes (K, 4) xyxy pixels, scores (K,), labels (K,))."""
    num_classes = logits.shape[-1]
    scores = torch.sigmoid(logits).flatten()
    keep = scores > spec.score_threshold
    scores = scores[keep]
    flat_idxs = torch.where(keep)[0]
    scores, order = scores.topk(min(spec.topk_candidates, flat_idxs.numel()))
    flat_idxs = flat_idxs[order]
    anchor_idxs = torch.div(flat_idxs, num_classes, rounding_mode="floor")
    labels = flat_idxs % num_classes
    boxes = box_coder.decode_single(regression[anchor_idxs], anchors[anchor_idxs])
    return box_ops.clip_boxes_to_image(boxes, image_size), scores, labels


def _image_detections(
    logits: list[torch.Tensor], regression: list[torch.Tensor], anchors: list[torch.Tensor], *,
    image_size: tuple[int, int], box_coder: BoxCoder, spec: PostprocessSpec,
) -> Detections:
    levels = [
        _level_candidates(lg, rg, an, image_size=image_size, box_coder=box_coder, spec=spec)
        for lg, rg, an in zip(logits, regression, anchors, strict=True)
    ]
    boxes, scores, labels = (torch.cat(field) for field in zip(*levels, strict=True))
    keep = box_ops.batched_nms(boxes, scores, labels, spec.iou_threshold)[: spec.max_detections]
    return Detections(boxes[keep].cpu().numpy(), scores[keep].cpu().numpy(), labels[keep].cpu().numpy())


def decode_detections(
    cls_logits: torch.Tensor,
    bbox_regression: torch.Tensor,
    anchors: list[torch.Tensor],
    *,
    level_sizes: list[int],
    image_sizes: Sequence[tuple[int, int]],
    box_coder: BoxCoder,
    spec: PostprocessSpec,
) -> list[Detections]:
    """Turn RetinaNet outputs into detections, one `Detections` per image.

    Args:
        cls_logits: (N, A, C) classification logits, levels concatenated.
        bbox_regression: (N, A, 4) box deltas, levels concatenated.
        anchors: per image, (A, 4) xyxy anchors in input pixels.
        level_sizes: anchors per level (h * w * anchors-per-cell), summing to A.
        image_sizes: per image, the (height, width) boxes are clipped to: the input, or the
            image's content in a padded input.
        box_coder: the model's delta decoder.
        spec: thresholds, top-k and the detection cap.

    Returns:
        Per image, boxes (K, 4) xyxy input pixels, scores and labels, best first.
    """
    results = []
    for image_logits, image_regression, image_anchors, image_size in zip(
        cls_logits, bbox_regression, anchors, image_sizes, strict=True
    ):
        results.append(_image_detections(
            list(image_logits.split(level_sizes)), list(image_regression.split(level_sizes)),
            list(image_anchors.split(level_sizes)), image_size=tuple(image_size), box_coder=box_coder, spec=spec,
        ))
    return results
