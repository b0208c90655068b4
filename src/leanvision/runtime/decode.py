"""RetinaNet decoding in numpy, identical to torchvision's.

Reproduces, step by step and in float32 like the original:
- `AnchorGenerator`: zero-centred cell anchors `round([-w, -h, w, h] / 2)` per
  (aspect ratio, size) pair, aspect-ratio-major, with w = size / sqrt(ratio) and
  h = size * sqrt(ratio); placed at `arange(feature) * (input // feature)` along each axis,
  location-major (row-major over y, x) then cell anchor, levels concatenated in order;
- `BoxCoder.decode_single`: centre/size deltas divided by the weights, dw/dh clamped from
  above at `clamp` (log(1000/16)) before exp;
- `RetinaNet.postprocess_detections` up to NMS: per level, sigmoid scores over the flattened
  (anchor, class) grid, `score > threshold`, top-k by score, anchor = index // C,
  label = index % C, decode, clip to the image.

The head outputs are (A, C) logits and (A, 4) regression per image, anchors of all levels
concatenated level by level, as torchvision's RetinaNetHead returns them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from leanvision.core.card import AnchorSpec, BoxCoderSpec


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
    """(R * S, 4) float32 zero-centred xyxy anchors for R aspect ratios (h/w) x S sizes."""
    scales = np.asarray(sizes, np.float32)
    h_ratios = np.sqrt(np.asarray(aspect_ratios, np.float32))
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    # np.round and torch.round both round half to even.
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2))


def grid_anchors(cell: np.ndarray, grid_hw: tuple[int, int], stride_hw: tuple[int, int]) -> np.ndarray:
    """(H * W * A, 4) float32 anchors of one level: `cell` (A, 4) shifted to every grid cell."""
    shifts_x = np.arange(grid_hw[1], dtype=np.int64) * stride_hw[1]
    shifts_y = np.arange(grid_hw[0], dtype=np.int64) * stride_hw[0]
    shift_y, shift_x = np.meshgrid(shifts_y, shifts_x, indexing="ij")
    shifts = np.stack([shift_x, shift_y, shift_x, shift_y], axis=-1).reshape(-1, 1, 4)
    return (shifts.astype(np.float32) + cell[None, :, :]).reshape(-1, 4)


def feature_sizes(spec: AnchorSpec, input_hw: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """Per level (height, width) of the feature map for an input of `input_hw`.

    The card's measured `feature_sizes` are used when present. Without them, each level
    is taken as ceil(input / stride), what a chain of stride-2, padding-1, 3x3 convolutions
    produces; the predictor checks the total anchor count against the model's output.
    """
    if spec.feature_sizes is not None:
        return tuple((int(h), int(w)) for h, w in spec.feature_sizes)
    return tuple((math.ceil(input_hw[0] / s), math.ceil(input_hw[1] / s)) for s in spec.strides)


def generate_anchors(spec: AnchorSpec, input_hw: tuple[int, int]) -> list[np.ndarray]:
    """Per level (H_l * W_l * A_l, 4) float32 xyxy anchors in input pixels (torchvision's)."""
    anchors = []
    for sizes, ratios, grid in zip(spec.sizes, spec.aspect_ratios, feature_sizes(spec, input_hw), strict=True):
        # torchvision's stride is input // feature size, not the nominal stride: 61 for a
        # 13-cell P6 at 800 px, 7 for a 13-cell map of a 100 px input.
        stride = (input_hw[0] // grid[0], input_hw[1] // grid[1])
        anchors.append(grid_anchors(cell_anchors(sizes, ratios), grid, stride))
    return anchors


def decode_boxes(rel_codes: np.ndarray, anchors: np.ndarray, coder: BoxCoderSpec) -> np.ndarray:
    """(K, 4) regression deltas applied to (K, 4) xyxy anchors -> (K, 4) xyxy boxes, float32."""
    rel_codes = np.asarray(rel_codes, np.float32)
    anchors = anchors.astype(np.float32, copy=False)
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    ctr_x = anchors[:, 0] + np.float32(0.5) * widths
    ctr_y = anchors[:, 1] + np.float32(0.5) * heights
    wx, wy, ww, wh = (np.float32(w) for w in coder.weights)
    clamp = np.float32(coder.clamp)
    dx, dy = rel_codes[:, 0] / wx, rel_codes[:, 1] / wy
    dw = np.minimum(rel_codes[:, 2] / ww, clamp)
    dh = np.minimum(rel_codes[:, 3] / wh, clamp)
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    half_w = np.float32(0.5) * np.exp(dw) * widths
    half_h = np.float32(0.5) * np.exp(dh) * heights
    return np.stack([pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h], axis=1)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp overflow -> inf -> score 0, as it should be
        return (np.float32(1) / (np.float32(1) + np.exp(-logits.astype(np.float32, copy=False)))).astype(np.float32)


def top_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` largest `scores`, largest first (ties: lower index first)."""
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        return part[np.lexsort((part, -scores[part]))]
    return np.argsort(-scores, kind="stable")


@dataclass(frozen=True)
class Candidates:
    """Scored boxes of one image before NMS.

    Attributes:
        boxes: (K, 4) float32 xyxy, input pixels.
        scores: (K,) float32 sigmoid scores.
        labels: (K,) int64 class indices.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def _level_candidates(
    logits: np.ndarray, deltas: np.ndarray, anchors: np.ndarray, coder: BoxCoderSpec, *, score_threshold: float, topk: int
) -> Candidates:
    num_classes = logits.shape[-1]
    scores = sigmoid(logits).reshape(-1)
    flat = np.flatnonzero(scores > score_threshold)
    flat = flat[top_scores(scores[flat], topk)]
    anchor_idx, labels = flat // num_classes, flat % num_classes
    boxes = decode_boxes(deltas[anchor_idx], anchors[anchor_idx], coder)
    return Candidates(boxes, scores[flat], labels.astype(np.int64))


def decode_candidates(
    cls_logits: np.ndarray,
    bbox_regression: np.ndarray,
    anchors: Sequence[np.ndarray],
    coder: BoxCoderSpec,
    *,
    score_threshold: float,
    topk: int,
    clip_hw: tuple[int, int],
) -> Candidates:
    """One image's candidates, torchvision's RetinaNet post-processing up to NMS.

    Args:
        cls_logits: (A, C) class logits, levels concatenated.
        bbox_regression: (A, 4) box deltas, same order.
        anchors: per level (A_l, 4) xyxy anchors; sum of A_l == A.
        coder: box coder weights and clamp.
        score_threshold: keep sigmoid scores strictly above this.
        topk: per level, at most this many candidates (highest scores).
        clip_hw: (height, width) the boxes are clipped to, input pixels.
    """
    parts = []
    start = 0
    for level_anchors in anchors:
        stop = start + len(level_anchors)
        parts.append(
            _level_candidates(
                cls_logits[start:stop], bbox_regression[start:stop], level_anchors, coder,
                score_threshold=score_threshold, topk=topk,
            )
        )
        start = stop
    boxes = np.concatenate([p.boxes for p in parts]).reshape(-1, 4)
    limit = np.array([clip_hw[1], clip_hw[0], clip_hw[1], clip_hw[0]], np.float32)
    boxes = np.clip(boxes, 0, limit)
    return Candidates(boxes, np.concatenate([p.scores for p in parts]), np.concatenate([p.labels for p in parts]))
