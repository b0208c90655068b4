"""`--with-nms`: RetinaNet body + decode + NMS as one exportable module (a self-contained model).

The graph computes what the numpy runtime does (torchvision's `postprocess_detections`):
per level, sigmoid scores, top-k of the (anchor, class) grid, those above the score
threshold kept, BoxCoder decoding against the anchors (a constant computed for the
card's input size), clipping to the input, class-aware hard NMS, the best `max_detections`.
Every shape is fixed except the batch, so it exports with a dynamic batch axis:

    boxes (N, K, 4) xyxy input pixels, scores (N, K), labels (N, K) int64,
    num_detections (N,) int64; slots past num_detections hold zeros (label -1).

NMS is a torch custom op, `leanvision::nms_per_class`, whose ONNX translation is the
standard `NonMaxSuppression` operator (per image, per class: no coordinate offsets, so no
float32 precision loss on large offset coordinates); ONNX Runtime and OpenVINO both run it.
Its eager implementation (torchvision's `nms`) is the reference in torch. This keeps the
dynamo exporter for this variant too: no legacy TorchScript export is needed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from leanvision.core.card import BoxCoderSpec, ModelCard, OutputSpec
from leanvision.core.enums import NmsKind
from leanvision.core.errors import ConfigError
from leanvision.runtime.decode import generate_anchors
from leanvision.runtime.detect import IN_GRAPH_OUTPUTS

IN_GRAPH_LAYOUTS = ("N,K,4", "N,K", "N,K", "N")


def in_graph_outputs() -> tuple[OutputSpec, ...]:
    """The card's `outputs` for a model with decode and NMS inside."""
    return tuple(OutputSpec(n, layout) for n, layout in zip(IN_GRAPH_OUTPUTS, IN_GRAPH_LAYOUTS, strict=True))


def _nms_reference(
    boxes: torch.Tensor, scores: torch.Tensor, max_per_class: int, iou_threshold: float, score_threshold: float
) -> torch.Tensor:
    """ONNX NonMaxSuppression semantics in torch: (S, 3) int64 [image, class, box] selections.

    Args:
        boxes: (N, M, 4) xyxy.
        scores: (N, C, M); boxes scoring at most `score_threshold` in a class are not candidates.
    """
    from torchvision.ops import batched_nms

    selected = []
    for image in range(boxes.shape[0]):
        classes, index = torch.nonzero(scores[image] > score_threshold, as_tuple=True)
        keep = batched_nms(boxes[image, index], scores[image, classes, index], classes, iou_threshold)
        classes, index = classes[keep], index[keep]
        # keep is best first: a box's rank in its class is how many same-class boxes precede it.
        same = classes[:, None] == classes[None, :]
        rank = torch.tril(same, diagonal=-1).sum(1)
        chosen = rank < max_per_class
        selected.append(torch.stack([torch.full_like(index[chosen], image), classes[chosen], index[chosen]], 1))
    return torch.cat(selected) if selected else torch.zeros((0, 3), dtype=torch.int64)


def _nms_onnx(boxes: Any, scores: Any, max_per_class: int, iou_threshold: float, score_threshold: float) -> Any:
    from onnxscript import opset18 as op

    return op.NonMaxSuppression(
        boxes, scores, op.Constant(value_ints=[max_per_class]), op.Constant(value_floats=[iou_threshold]),
        op.Constant(value_floats=[score_threshold]), center_point_box=0,
    )


@functools.cache
def nms_op() -> Any:
    """`torch.ops.leanvision.nms_per_class`, registered on first use (no import side effect)."""
    op = torch.library.custom_op("leanvision::nms_per_class", _nms_reference, mutates_args=())

    @op.register_fake
    def _(boxes, scores, max_per_class, iou_threshold, score_threshold):
        count = torch.library.get_ctx().new_dynamic_size()
        return boxes.new_empty((count, 3), dtype=torch.int64)

    return torch.ops.leanvision.nms_per_class.default


def custom_translation() -> dict[Any, Callable[..., Any]]:
    """The exporter's translation table for the custom NMS op."""
    return {nms_op(): _nms_onnx}


def decode(deltas: torch.Tensor, anchors: torch.Tensor, coder: BoxCoderSpec) -> torch.Tensor:
    """(..., 4) deltas on (..., 4) xyxy anchors -> (..., 4) xyxy boxes, torchvision's BoxCoder."""
    widths = anchors[..., 2] - anchors[..., 0]
    heights = anchors[..., 3] - anchors[..., 1]
    ctr_x = anchors[..., 0] + 0.5 * widths
    ctr_y = anchors[..., 1] + 0.5 * heights
    wx, wy, ww, wh = coder.weights
    pred_x = deltas[..., 0] / wx * widths + ctr_x
    pred_y = deltas[..., 1] / wy * heights + ctr_y
    half_w = 0.5 * (torch.exp(torch.clamp(deltas[..., 2] / ww, max=coder.clamp)) * widths)
    half_h = 0.5 * (torch.exp(torch.clamp(deltas[..., 3] / wh, max=coder.clamp)) * heights)
    return torch.stack([pred_x - half_w, pred_y - half_h, pred_x + half_w, pred_y + half_h], dim=-1)


def _gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (N, M, ...) rows picked by index (N, K) -> (N, K, ...)."""
    if values.ndim == 2:
        return torch.gather(values, 1, index)
    return torch.gather(values, 1, index[..., None].expand(-1, -1, values.shape[-1]))


class DetectWithNms(nn.Module):
    """A detector's body followed by decode and class-aware hard NMS, fixed-size outputs.

    Args:
        body: (N, 3, H, W) -> (cls_logits (N, A, C), bbox_regression (N, A, 4)).
        card: the model card at the export input size (anchors with feature sizes, box
            coder, post-processing); its NMS must be hard NMS.
    """

    def __init__(self, body: nn.Module, card: ModelCard) -> None:
        super().__init__()
        spec = card.postprocess
        if spec.nms is not NmsKind.HARD:
            raise ConfigError(f"--with-nms puts hard NMS in the graph; the card asks for {spec.nms.value}")
        if card.anchors is None or card.box_coder is None:
            raise ConfigError(f"card '{card.name}' has no anchors or box coder to decode with")
        self.body = body
        levels = generate_anchors(card.anchors, (card.input.height, card.input.width))
        self.register_buffer("anchors", torch.from_numpy(np.concatenate(levels)), persistent=False)
        self.level_sizes = [len(level) for level in levels]
        self.num_classes = card.num_classes
        self.coder = card.box_coder
        self.spec = spec
        self.input_hw = (card.input.height, card.input.width)

    def _level(self, logits: torch.Tensor, deltas: torch.Tensor, start: int, size: int):
        """Top-k candidates of one level: boxes (N, k, 4), scores (N, k), labels (N, k)."""
        scores = torch.sigmoid(logits[:, start : start + size]).flatten(1)  # (N, size * C)
        scores, flat = scores.topk(min(self.spec.topk_candidates, size * self.num_classes), dim=1)
        anchor = torch.div(flat, self.num_classes, rounding_mode="floor") + start
        boxes = decode(_gather(deltas, anchor), self.anchors[anchor], self.coder)
        return boxes, scores, flat % self.num_classes

    def candidates(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All levels' candidates, clipped: boxes (N, M, 4), scores (N, M) (-1: below threshold), labels."""
        logits, deltas = self.body(images)
        starts = np.cumsum([0, *self.level_sizes[:-1]]).tolist()
        parts = [self._level(logits, deltas, s, n) for s, n in zip(starts, self.level_sizes, strict=True)]
        boxes, scores, labels = (torch.cat(field, dim=1) for field in zip(*parts, strict=True))
        height, width = self.input_hw
        limit = boxes.new_tensor([width, height, width, height])
        boxes = torch.minimum(torch.clamp(boxes, min=0), limit)
        scores = torch.where(scores > self.spec.score_threshold, scores, torch.full_like(scores, -1.0))
        return boxes, scores, labels

    def _per_class_scores(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, M) scores -> (N, C, M): a box scores in its own class only (-1 elsewhere)."""
        if self.spec.class_agnostic:
            return scores[:, None, :]
        classes = torch.arange(self.num_classes, device=scores.device)[None, :, None]
        return torch.where(labels[:, None, :] == classes, scores[:, None, :], torch.full_like(scores[:, None, :], -1.0))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) normalised -> boxes (N, K, 4), scores (N, K), labels (N, K), num_detections (N,)."""
        boxes, scores, labels = self.candidates(images)
        count = scores.shape[1]
        selected = nms_op()(boxes, self._per_class_scores(scores, labels), self.spec.max_detections,
                            self.spec.iou_threshold, self.spec.score_threshold)
        # Some NMS kernels pad their output with -1 rows: route those to a spare column.
        valid = selected[:, 0] >= 0
        image = torch.where(valid, selected[:, 0], torch.zeros_like(selected[:, 0]))
        box = torch.where(valid, selected[:, 2], torch.full_like(selected[:, 2], count))
        kept = torch.full((scores.shape[0], count + 1), -1.0, dtype=scores.dtype, device=scores.device)
        kept = kept.index_put((image, box), scores[image, torch.clamp(box, max=count - 1)])[:, :count]
        best, order = kept.topk(min(self.spec.max_detections, count), dim=1)
        found = best > self.spec.score_threshold
        out_boxes = torch.where(found[..., None], _gather(boxes, order), torch.zeros_like(_gather(boxes, order)))
        out_scores = torch.where(found, best, torch.zeros_like(best))
        out_labels = torch.where(found, _gather(labels, order), torch.full_like(order, -1))
        return out_boxes, out_scores, out_labels, found.sum(dim=1)
