"""Merging tile results into one result per image: boxes (NMS, NMM, WBF) and dense maps.

Boxes arrive per tile in tile-output pixels; `tiles_to_image` maps them to full-image
pixels, clips them and applies the tiles' keep regions. `merge_detections` then resolves
the duplicates that overlapping tiles produce (given each box's tile, only boxes of
different tiles are matched):

- NMS: keep the highest-scoring box of each group of matches, drop the rest.
- NMM (non-maximum merging, SAHI's GREEDYNMM): the highest-scoring box absorbs every box
  matching it; the result is their enclosing box with the highest score. Recovers the full
  extent of an object that one tile saw only partly.
- WBF (weighted boxes fusion, Solovyev et al. 2021, arXiv:1910.13302): boxes matching a
  cluster are averaged with their scores as weights.

Matching is by IoU, or by IoS (intersection over the smaller box: a partial box cut by a
tile edge lies inside the full one, IoS ~1 while IoU is its area fraction). IoS with a low
threshold fuses distinct neighbours in dense scenes (PITFALLS: SAHI's default
GREEDYNMM/IOS did, matching boxes of the same tile too); prefer overlapping grids, whose
keep regions need no merge for objects up to the overlap (see `grid`).

Cost: NMS and NMM find candidate pairs by a sweep along x (5000 boxes: ~0.1 s); WBF compares
each box with every cluster's extent (5000 boxes: ~0.5 s).

`DenseStitcher` assembles density maps or segmentation logits from tile outputs.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from leanvision.core.boxes import box_area
from leanvision.core.config import Config
from leanvision.core.detections import Detections
from leanvision.core.errors import ConfigError
from leanvision.largeimage.grid import Tile, boxes_to_image, keep_mask


class MergeMethod(enum.StrEnum):
    NMS = "nms"
    NMM = "nmm"
    WBF = "wbf"


class MatchMetric(enum.StrEnum):
    IOU = "iou"
    IOS = "ios"


@dataclass(frozen=True)
class MergeOptions(Config):
    """How duplicate detections from overlapping tiles are resolved.

    Attributes:
        method: NMS, NMM or WBF.
        metric: IoU or IoS (intersection over the smaller box).
        threshold: two boxes match when metric > threshold.
        class_agnostic: match boxes of different labels too (NMM/WBF then take the label
            of the highest-scoring box).
        max_detections: the most detections an image keeps once its tiles are merged, the
            highest scores (`predict --max-det`); None: no cap beyond the model's per tile.
    """

    method: MergeMethod = MergeMethod.NMS
    metric: MatchMetric = MatchMetric.IOS
    threshold: float = 0.5
    class_agnostic: bool = False
    max_detections: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.threshold < 1:
            raise ConfigError(f"merge threshold must be in [0, 1), got {self.threshold}")
        if self.max_detections is not None and self.max_detections < 1:
            raise ConfigError(f"max_detections must be at least 1, got {self.max_detections}")


def tiles_to_image(
    per_tile: Sequence[Detections],
    tiles: Sequence[Tile],
    image_size: tuple[int, int],
    *,
    apply_keep: bool = True,
) -> tuple[Detections, np.ndarray]:
    """Concatenate per-tile detections in full-image pixels.

    Args:
        per_tile: detections of each tile, xyxy in that tile's output pixels.
        tiles: the tiles, same order.
        image_size: (width, height) of the image; boxes are clipped to it and boxes with no
            area left (found in the padding of a small image) are dropped.
        apply_keep: drop detections whose centre is outside their tile's keep region.

    Returns:
        the detections, and (N,) int64 the index of each one's tile (for `merge_detections`).
    """
    if len(per_tile) != len(tiles):
        raise ValueError(f"{len(per_tile)} detection sets for {len(tiles)} tiles")
    index = np.concatenate([np.full(len(d), i, np.int64) for i, d in enumerate(per_tile)] or [np.zeros(0, np.int64)])
    merged = Detections.concat(list(per_tile))
    boxes = boxes_to_image(merged.boxes, tiles, index) if len(tiles) else merged.boxes
    dets = Detections(boxes, merged.scores, merged.labels).clip(*image_size)
    mask = dets.areas > 0
    if apply_keep and len(tiles):
        mask &= keep_mask(dets.boxes, tiles, index)
    return dets[mask], index[mask]


def _pair_metric(metric: MatchMetric, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P,) IoU or IoS of box pairs a[i], b[i], each (P, 4) xyxy."""
    wh = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area_a, area_b = box_area(a), box_area(b)
    denom = area_a + area_b - inter if metric is MatchMetric.IOU else np.minimum(area_a, area_b)
    return np.where(denom > 0, inter / np.maximum(denom, 1e-12), 0.0)


# Candidate pairs are generated in chunks of at most this many, to bound memory.
_PAIR_CHUNK = 1 << 22


def _matching_pairs(
    dets: Detections, options: MergeOptions, tile_index: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of boxes that match: metric > threshold, same label unless
    agnostic, different tiles when `tile_index` is given.

    A sweep along x: with boxes sorted by x1, the boxes that can intersect box k are the
    following ones whose x1 is below k's x2, a contiguous range found by binary search.
    Written by hand because no dependency of the torch-free world offers IoS matching;
    near-linear for tile detections (each box meets a few neighbours), where the greedy
    all-pairs loop took seconds for 5000 boxes.
    """
    boxes = dets.boxes.astype(np.float64)
    by_x = np.argsort(boxes[:, 0], kind="stable")
    sorted_boxes = boxes[by_x]
    starts = np.arange(1, len(boxes) + 1)
    ends = np.searchsorted(sorted_boxes[:, 0], sorted_boxes[:, 2], side="left")
    counts = np.maximum(ends - starts, 0)
    firsts, seconds = [], []
    for lo, hi in _chunks(counts):
        k = np.repeat(np.arange(lo, hi), counts[lo:hi])
        offsets = np.arange(len(k)) - np.repeat(np.cumsum(counts[lo:hi]) - counts[lo:hi], counts[lo:hi])
        i, j = by_x[k], by_x[starts[k] + offsets]
        keep = _pair_metric(options.metric, boxes[i], boxes[j]) > options.threshold
        if not options.class_agnostic:
            keep &= dets.labels[i] == dets.labels[j]
        if tile_index is not None:
            keep &= tile_index[i] != tile_index[j]
        firsts.append(i[keep])
        seconds.append(j[keep])
    empty = np.zeros(0, np.int64)
    return np.concatenate(firsts or [empty]), np.concatenate(seconds or [empty])


def _chunks(counts: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive [lo, hi) ranges of `counts` whose sums stay near `_PAIR_CHUNK`."""
    bounds = np.searchsorted(np.cumsum(counts), np.arange(1, counts.sum() // _PAIR_CHUNK + 1) * _PAIR_CHUNK)
    cuts = [0, *sorted(set(int(b) + 1 for b in bounds) - {0}), len(counts)]
    return [(lo, hi) for lo, hi in itertools.pairwise(cuts) if hi > lo]


def _heads(dets: Detections, options: MergeOptions, tile_index: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy grouping in score order, shared by NMS and NMM.

    Visiting boxes from the highest score, a box not yet absorbed heads a group and absorbs
    every not-yet-absorbed box matching it (greedy NMS keeps the heads; SAHI's greedy NMM
    merges each group). Only boxes with a match need the Python loop.

    Returns:
        heads: (G,) indices of the group heads, best score first.
        head_of: (N,) index of the head of each box's group (a head maps to itself).
    """
    n = len(dets)
    order = np.argsort(-dets.scores, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    a, b = _matching_pairs(dets, options, tile_index)
    src, dst = np.where(rank[a] < rank[b], a, b), np.where(rank[a] < rank[b], b, a)
    by_src = np.argsort(rank[src], kind="stable")
    src_rank, dst = rank[src][by_src], dst[by_src]
    lo = np.searchsorted(src_rank, np.arange(n), side="left")
    hi = np.searchsorted(src_rank, np.arange(n), side="right")
    head_of, alive = np.arange(n), np.ones(n, bool)
    for r in np.flatnonzero(hi > lo):  # ranks with matches, best first
        i = order[r]
        if alive[i]:
            members = dst[lo[r] : hi[r]]
            members = members[alive[members]]
            alive[members] = False
            head_of[members] = i
    return order[alive[order]], head_of


def nms(dets: Detections, options: MergeOptions, tile_index: np.ndarray | None = None) -> Detections:
    """Non-maximum suppression: the best box of each group survives, unchanged."""
    heads, _ = _heads(dets, options, tile_index)
    return dets[heads]


def nmm(dets: Detections, options: MergeOptions, tile_index: np.ndarray | None = None) -> Detections:
    """Greedy non-maximum merging: each group becomes its enclosing box, best score and label."""
    heads, head_of = _heads(dets, options, tile_index)
    lo, hi = dets.boxes[:, :2].copy(), dets.boxes[:, 2:].copy()
    np.minimum.at(lo, head_of, dets.boxes[:, :2])
    np.maximum.at(hi, head_of, dets.boxes[:, 2:])
    boxes = np.concatenate([lo[heads], hi[heads]], axis=1)
    return Detections(boxes, dets.scores[heads], dets.labels[heads])


def wbf(dets: Detections, options: MergeOptions, tile_index: np.ndarray | None = None) -> Detections:
    """Weighted boxes fusion (Solovyev et al.), matching each box against the fused boxes.

    Boxes are visited in score order; a box joins the fused box of its label (any label if
    class-agnostic; with `tile_index`, none already holding a box of its tile) it matches
    best above the threshold, else starts a cluster. A fused box is the score-weighted mean
    of its members, its score their mean score. The paper's final rescale by
    min(members, models) / models is left out: tiles are not an ensemble (an object far
    from any edge is seen by one tile only and would be penalised for it).
    """
    n = len(dets)
    fused, weighted = np.zeros((n, 4)), np.zeros((n, 4))
    weights, counts = np.zeros(n), np.zeros(n)
    labels = np.zeros(n, np.int64)
    tiles_of: list[set[int]] = []
    k = 0
    for i in np.argsort(-dets.scores, kind="stable"):
        box, score, label = dets.boxes[i].astype(np.float64), float(dets.scores[i]), int(dets.labels[i])
        tile = -1 if tile_index is None else int(tile_index[i])
        j = _best_cluster(box, label, fused[:k], labels[:k], options, tiles_of, tile)
        if j < 0:
            j, k = k, k + 1
            labels[j] = label
            tiles_of.append(set())
        tiles_of[j].add(tile)
        weighted[j] += box * score
        weights[j] += score
        counts[j] += 1
        fused[j] = weighted[j] / max(weights[j], 1e-12)
    return Detections(fused[:k], weights[:k] / counts[:k], labels[:k])


def _best_cluster(
    box: np.ndarray,
    label: int,
    fused: np.ndarray,
    labels: np.ndarray,
    options: MergeOptions,
    tiles_of: list[set[int]],
    tile: int,
) -> int:
    """Index of the fused box `box` matches best above the threshold, or -1.

    Only fused boxes intersecting `box` can match: four comparisons over all clusters
    select the few for which the metric is computed. Clusters holding a box of `tile`
    (>= 0) are skipped.
    """
    near = (fused[:, 0] < box[2]) & (fused[:, 2] > box[0]) & (fused[:, 1] < box[3]) & (fused[:, 3] > box[1])
    if not options.class_agnostic:
        near &= labels == label
    candidates = np.flatnonzero(near)
    if tile >= 0:
        candidates = np.array([c for c in candidates if tile not in tiles_of[c]], np.int64)
    if not len(candidates):
        return -1
    score = _pair_metric(options.metric, np.broadcast_to(box, (len(candidates), 4)), fused[candidates])
    best = int(np.argmax(score))
    return int(candidates[best]) if score[best] > options.threshold else -1


_METHODS = {MergeMethod.NMS: nms, MergeMethod.NMM: nmm, MergeMethod.WBF: wbf}


def merge_detections(
    dets: Detections, options: MergeOptions | None = None, *, tile_index: np.ndarray | None = None
) -> Detections:
    """Resolve duplicates among full-image detections gathered from overlapping tiles.

    Args:
        dets: all tiles' detections, xyxy in full-image pixels (see `tiles_to_image`).
        options: method, metric, threshold, class awareness (default NMS, IoS > 0.5, per class).
        tile_index: (N,) tile of each detection. When given, boxes of the same tile never
            merge: the model's own NMS already separated them, and IoS would otherwise fuse
            distinct touching objects (a small cell beside a big one, PITFALLS.md). Pass it.

    Returns:
        merged detections, highest score first for NMS and NMM.
    """
    options = options or MergeOptions()
    if len(dets) == 0:
        return Detections.empty()
    if tile_index is not None:
        tile_index = np.asarray(tile_index, np.int64).reshape(-1)
        if len(tile_index) != len(dets):
            raise ValueError(f"tile_index has {len(tile_index)} entries for {len(dets)} detections")
    return _METHODS[MergeMethod(options.method)](dets, options, tile_index)


class DenseKind(enum.StrEnum):
    DENSITY = "density"  # per-cell amounts (people per cell): resampling preserves sums
    LOGITS = "logits"  # per-cell quantities (class scores): resampling preserves values


class DenseStitcher:
    """Assemble a full-image dense map from per-tile model outputs, averaging where tiles overlap.

    The canvas has one cell per `stride` level-0 pixels: shape (C, ceil(H/stride),
    ceil(W/stride)). A tile's output (C, h, w) covers its window; it is resampled to the
    canvas cells the window covers (INTER_AREA; for DENSITY values are then multiplied by
    the ratio of cell areas so each tile's sum is unchanged), cropped to the image, and
    accumulated with a per-cell count. `result()` divides by the count: where tiles overlap
    each saw the same objects, so averaging keeps the total of a density map right.

    Window edges that fall between canvas cells are rounded to the nearest cell (at most
    half a cell of shift); choose `stride` = window / out * model_stride for exact placement.

    Args:
        image_w, image_h: full image size, level-0 pixels.
        stride: level-0 pixels per canvas cell.
        channels: C of the tile outputs.
        kind: DENSITY (sum-preserving) or LOGITS (value-preserving).
    """

    def __init__(self, image_w: int, image_h: int, *, stride: float, channels: int = 1, kind: DenseKind) -> None:
        if stride <= 0:
            raise ValueError(f"stride must be positive, got {stride}")
        self.stride = float(stride)
        self.kind = DenseKind(kind)
        self.shape = (channels, math.ceil(image_h / stride), math.ceil(image_w / stride))
        self._sum = np.zeros(self.shape, np.float64)
        self._count = np.zeros(self.shape[1:], np.float64)

    @classmethod
    def for_tiles(
        cls, tiles: Sequence[Tile], image_w: int, image_h: int, *, model_stride: int, channels: int = 1, kind: DenseKind
    ) -> DenseStitcher:
        """A stitcher whose cells are the model's output cells: stride = window / out * model_stride.

        Args:
            tiles: the grid (its first tile sets the scale; a grid has one scale).
            model_stride: input pixels per output cell of the model (8 for CSRNet).
        """
        t = tiles[0]
        return cls(image_w, image_h, stride=t.w / t.out_w * model_stride, channels=channels, kind=kind)

    def _cells(self, start: int, size: int) -> tuple[int, int]:
        return round(start / self.stride), round((start + size) / self.stride)

    def add(self, tile: Tile, output: np.ndarray) -> None:
        """Accumulate one tile's output: (C, h, w) or (h, w) at the model's output stride."""
        out = np.asarray(output, np.float32)
        out = out[None] if out.ndim == 2 else out
        if out.shape[0] != self.shape[0]:
            raise ValueError(f"tile output has {out.shape[0]} channels, the stitcher {self.shape[0]}")
        x0, x1 = self._cells(tile.x, tile.w)
        y0, y1 = self._cells(tile.y, tile.h)
        placed = self._resample(out, x1 - x0, y1 - y0)
        cx1, cy1 = min(x1, self.shape[2]), min(y1, self.shape[1])
        self._sum[:, y0:cy1, x0:cx1] += placed[:, : cy1 - y0, : cx1 - x0]
        self._count[y0:cy1, x0:cx1] += 1

    def _resample(self, out: np.ndarray, width: int, height: int) -> np.ndarray:
        """(C, height, width) resampled tile output; DENSITY keeps each channel's sum."""
        import cv2

        c, h, w = out.shape
        if (h, w) == (height, width):
            return out
        hwc = np.ascontiguousarray(out.transpose(1, 2, 0))
        interp = cv2.INTER_AREA if width <= w and height <= h else cv2.INTER_LINEAR
        resized = cv2.resize(hwc, (width, height), interpolation=interp).reshape(height, width, c)
        resized = resized.transpose(2, 0, 1).astype(np.float64)
        if self.kind is DenseKind.DENSITY:
            # INTER_AREA keeps the mean, so the area ratio restores the sum; the sum ratio
            # then removes what interpolation at the edges (upscaling) changes.
            resized *= (h * w) / (height * width)
            before, after = out.sum(axis=(1, 2), dtype=np.float64), resized.sum(axis=(1, 2))
            ratio = np.where(np.abs(after) > 1e-12, before / np.where(after == 0, 1, after), 1.0)
            resized *= ratio[:, None, None]
        return resized

    def result(self) -> np.ndarray:
        """(C, Hc, Wc) float32 map; cells no tile covered are 0."""
        return (self._sum / np.maximum(self._count, 1)).astype(np.float32)
