"""Merging tile detections (NMS, NMM, WBF) and stitching dense maps over overlapping tiles."""

from __future__ import annotations

import numpy as np
import pytest

from leanvision.core import Detections
from leanvision.core.boxes import box_ios, box_iou
from leanvision.largeimage import merge as merge_module
from leanvision.largeimage.grid import Tile, plan_grid
from leanvision.largeimage.merge import (
    DenseKind,
    DenseStitcher,
    MatchMetric,
    MergeMethod,
    MergeOptions,
    merge_detections,
    tiles_to_image,
)


def simulate_detector(objects: np.ndarray, tiles: list[Tile], *, min_visible: float = 0.2) -> list[Detections]:
    """What a perfect detector reports per tile: each object's visible part, in tile-output
    pixels, scored by the visible fraction (a cut object scores lower)."""
    per_tile = []
    for t in tiles:
        lo, hi = np.array([t.x, t.y]), np.array([t.x + t.w, t.y + t.h])
        cut = np.concatenate([np.maximum(objects[:, :2], lo), np.minimum(objects[:, 2:], hi)], axis=1)
        area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
        visible = area(cut) / area(objects)
        seen = visible >= min_visible
        scale = np.array([t.scale_x, t.scale_y] * 2)
        boxes = (cut[seen] - np.array([t.x, t.y, t.x, t.y])) * scale
        per_tile.append(Detections(boxes, 0.9 * visible[seen], np.zeros(seen.sum(), np.int64)))
    return per_tile


@pytest.mark.parametrize("method", [MergeMethod.NMS, MergeMethod.NMM])
def test_object_cut_by_a_tile_border_yields_one_detection(method):
    tiles = plan_grid(1000, 400, window=400, out_size=200, overlap=100)  # windows at x 0, 300, 600
    obj = np.array([[370, 200, 430, 260]], np.float64)  # crosses the border of window 0 at x=400
    per_tile = simulate_detector(obj, tiles)
    # Keep regions alone would drop tile 0's half (its centre lies past the cut at x=350):
    # keep every box to test the merge.
    dets, tile_index = tiles_to_image(per_tile, tiles, (1000, 400), apply_keep=False)
    assert len(dets) == 2  # tile 0 sees the left half, tile 1 the whole object
    merged = merge_detections(dets, MergeOptions(method=method, metric=MatchMetric.IOS, threshold=0.5), tile_index=tile_index)
    assert len(merged) == 1
    np.testing.assert_allclose(merged.boxes[0], obj[0], atol=1e-3)
    assert merged.scores[0] == pytest.approx(0.9)


def test_nmm_rebuilds_an_object_no_tile_sees_whole():
    tiles = plan_grid(1000, 400, window=400, out_size=200, overlap=100)
    obj = np.array([[250, 100, 450, 160]], np.float64)  # wider than the 100 px overlap
    dets, _ = tiles_to_image(simulate_detector(obj, tiles), tiles, (1000, 400))
    assert len(dets) == 2 and not any(np.allclose(b, obj[0]) for b in dets.boxes)
    nmm = merge_detections(dets, MergeOptions(method=MergeMethod.NMM, metric=MatchMetric.IOS, threshold=0.5))
    np.testing.assert_allclose(nmm.boxes, obj, atol=1e-3)
    nms = merge_detections(dets, MergeOptions(method=MergeMethod.NMS, metric=MatchMetric.IOS, threshold=0.5))
    assert len(nms) == 1  # keeps the best part only


def test_overlap_grid_keeps_every_small_object_exactly_once_without_merge():
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, [3000, 2000], (300, 2))
    sizes = rng.uniform(10, 100, (300, 2))  # all at most the overlap
    objects = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).clip(0, [3000, 2000] * 2)
    tiles = plan_grid(3000, 2000, window=800, out_size=400, overlap=100)
    dets, _ = tiles_to_image(simulate_detector(objects, tiles, min_visible=0.01), tiles, (3000, 2000))
    assert len(dets) == len(objects)
    order = np.lexsort(dets.boxes.T[::-1])
    np.testing.assert_allclose(dets.boxes[order], objects[np.lexsort(objects.T[::-1])], atol=1e-2)


def test_class_aware_merge_keeps_overlapping_boxes_of_other_classes():
    dets = Detections(np.array([[0, 0, 10, 10], [1, 1, 10, 10]]), np.array([0.9, 0.8]), np.array([0, 1]))
    for method in MergeMethod:
        assert len(merge_detections(dets, MergeOptions(method=method))) == 2
        agnostic = merge_detections(dets, MergeOptions(method=method, class_agnostic=True))
        assert len(agnostic) == 1 and agnostic.labels[0] == 0


@pytest.mark.parametrize("method", list(MergeMethod))
def test_boxes_of_one_tile_never_merge_when_tiles_are_given(method):
    # A small cell beside a big one in the same tile: IoS 1, yet two objects the model's
    # NMS kept apart. The same pair from two tiles is one object seen twice.
    dets = Detections(np.array([[0, 0, 50, 50], [40, 40, 50, 50]]), np.array([0.9, 0.8]), np.zeros(2))
    options = MergeOptions(method=method, metric=MatchMetric.IOS, threshold=0.5)
    assert len(merge_detections(dets, options, tile_index=np.array([3, 3]))) == 2
    assert len(merge_detections(dets, options, tile_index=np.array([3, 4]))) == 1
    with pytest.raises(ValueError, match="tile_index"):
        merge_detections(dets, options, tile_index=np.array([3]))


def test_iou_keeps_distinct_neighbours_that_ios_would_fuse():
    # A small cell touching a big one: IoS = 1 (the small one is inside), IoU = 0.04.
    dets = Detections(np.array([[0, 0, 50, 50], [40, 40, 50, 50]]), np.array([0.9, 0.8]), np.zeros(2))
    assert len(merge_detections(dets, MergeOptions(metric=MatchMetric.IOU, threshold=0.5))) == 2
    assert len(merge_detections(dets, MergeOptions(metric=MatchMetric.IOS, threshold=0.5))) == 1


def test_nms_matches_torchvision():
    torchvision = pytest.importorskip("torchvision")
    import torch

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (300, 2))], axis=1).astype(np.float32)
    scores, labels = rng.uniform(0, 1, 300).astype(np.float32), rng.integers(0, 3, 300)
    dets = Detections(boxes, scores, labels)
    ours = merge_detections(dets, MergeOptions(method=MergeMethod.NMS, metric=MatchMetric.IOU, threshold=0.5))
    keep = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), 0.5)
    np.testing.assert_array_equal(np.sort(ours.scores), np.sort(scores[keep.numpy()]))


def greedy_reference(dets: Detections, metric: MatchMetric, threshold: float) -> list[list[int]]:
    """The documented greedy grouping, all pairs, plain Python: groups of indices, best first."""
    order = sorted(range(len(dets)), key=lambda i: -dets.scores[i])
    fn = box_iou if metric is MatchMetric.IOU else box_ios
    match = fn(dets.boxes.astype(np.float64), dets.boxes.astype(np.float64))
    taken, groups = set(), []
    for i in order:
        if i in taken:
            continue
        members = [j for j in order if j not in taken and j != i and match[i, j] > threshold and dets.labels[i] == dets.labels[j]]
        taken.update([i, *members])
        groups.append([i, *members])
    return groups


@pytest.mark.parametrize("metric", list(MatchMetric))
@pytest.mark.parametrize("chunk", [1 << 22, 7])
def test_nms_and_nmm_match_an_all_pairs_reference(metric, chunk, monkeypatch):
    monkeypatch.setattr(merge_module, "_PAIR_CHUNK", chunk)  # also exercise chunked pairing
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 300, (400, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 50, (400, 2))], axis=1)
    dets = Detections(boxes, rng.uniform(0, 1, 400), rng.integers(0, 2, 400))
    options = MergeOptions(method=MergeMethod.NMM, metric=metric, threshold=0.4)
    groups = greedy_reference(dets, metric, 0.4)
    expected = np.array([np.concatenate([dets.boxes[g, :2].min(0), dets.boxes[g, 2:].max(0)]) for g in groups])
    np.testing.assert_allclose(merge_detections(dets, options).boxes, expected)
    nms = merge_detections(dets, MergeOptions(method=MergeMethod.NMS, metric=metric, threshold=0.4))
    np.testing.assert_array_equal(nms.boxes, dets.boxes[[g[0] for g in groups]])


def test_wbf_hand_computed():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [100, 100, 110, 110], [0.5, 0.5, 10.5, 10.5]])
    dets = Detections(boxes, np.array([0.9, 0.6, 0.5, 0.3]), np.array([0, 0, 0, 1]))
    fused = merge_detections(dets, MergeOptions(method=MergeMethod.WBF, metric=MatchMetric.IOU, threshold=0.55))
    # Boxes 0 and 1: IoU 81/119 = 0.68 > 0.55 -> (0.9 * b0 + 0.6 * b1) / 1.5, score (0.9 + 0.6) / 2.
    # Box 3 overlaps them but has another label: its own cluster. Box 2 is alone.
    assert len(fused) == 3
    np.testing.assert_allclose(fused.boxes[0], [0.4, 0.4, 10.4, 10.4], atol=1e-5)
    np.testing.assert_allclose(fused.scores, [0.75, 0.5, 0.3], atol=1e-6)
    np.testing.assert_allclose(fused.boxes[1:], boxes[[2, 3]], atol=1e-5)
    np.testing.assert_array_equal(fused.labels, [0, 0, 1])


def test_wbf_matches_against_fused_boxes_not_first_members():
    # Box 3 has IoU 0.54 with box 0 alone (< 0.6) but 0.67 with the fused box of 0 and 1.
    boxes = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 0, 60, 10], [3, 0, 13, 10]])
    dets = Detections(boxes, np.array([0.9, 0.9, 0.8, 0.5]), np.zeros(4))
    fused = merge_detections(dets, MergeOptions(method=MergeMethod.WBF, metric=MatchMetric.IOU, threshold=0.6))
    assert len(fused) == 2
    np.testing.assert_allclose(fused.boxes[0], [3.3 / 2.3, 0, 26.3 / 2.3, 10], atol=1e-5)
    assert fused.scores[0] == pytest.approx((0.9 + 0.9 + 0.5) / 3)


def test_empty_inputs():
    assert len(merge_detections(Detections.empty())) == 0
    tiles = plan_grid(100, 100, window=50, out_size=50)
    dets, index = tiles_to_image([Detections.empty()] * len(tiles), tiles, (100, 100))
    assert len(dets) == len(index) == 0


def test_tiles_to_image_drops_padding_detections_of_small_images():
    (tile,) = plan_grid(300, 200, window=400, out_size=200)
    dets = Detections(np.array([[10, 10, 50, 50], [160, 160, 190, 190]]), np.array([0.9, 0.8]), np.zeros(2))
    mapped, _ = tiles_to_image([dets], [tile], (300, 200))
    np.testing.assert_allclose(mapped.boxes, [[20, 20, 100, 100]])  # the other lies in the padding


def density_truth(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A positive density map: a few Gaussian blobs on cells of the canvas."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    out = np.zeros(shape)
    for cy, cx in rng.uniform(0, shape, (20, 2)):
        out += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
    return out


def test_density_stitch_over_overlapping_tiles_is_exact_when_cells_align():
    stride = 8  # 400 px windows -> 200 px inputs, model stride 4: one output cell per 8 image px
    truth = density_truth((75, 125))  # 1000 x 600 image
    tiles = plan_grid(1000, 600, window=400, out_size=200, overlap=96)
    stitcher = DenseStitcher(1000, 600, stride=stride, kind=DenseKind.DENSITY)
    for t in tiles:
        stitcher.add(t, truth[t.y // 8 : (t.y + t.h) // 8, t.x // 8 : (t.x + t.w) // 8])
    result = stitcher.result()
    assert result.shape == (1, 75, 125)
    np.testing.assert_allclose(result[0], truth, rtol=1e-5, atol=1e-6)
    assert result.sum() == pytest.approx(truth.sum(), rel=1e-6)


def test_density_stitch_preserves_each_tiles_sum_when_resampled():
    truth = density_truth((75, 125), seed=1)
    tiles = plan_grid(1000, 600, window=400, out_size=200, overlap=96)
    stitcher = DenseStitcher(1000, 600, stride=8, kind=DenseKind.DENSITY)
    coarse_sums = []
    for t in tiles:  # the model outputs at stride 16 of its input: 25 x 25 cells of 16 px
        window = truth[t.y // 8 : (t.y + t.h) // 8, t.x // 8 : (t.x + t.w) // 8]
        coarse = window.reshape(25, 2, 25, 2).sum(axis=(1, 3))
        coarse_sums.append(coarse.sum())
        single = DenseStitcher(1000, 600, stride=8, kind=DenseKind.DENSITY)
        single.add(t, coarse)
        assert single.result().sum() == pytest.approx(coarse.sum(), rel=1e-5)
        stitcher.add(t, coarse)
    assert stitcher.result().sum() == pytest.approx(truth.sum(), rel=0.02)


def test_stitcher_for_tiles_uses_the_model_output_cells():
    tiles = plan_grid(1000, 600, window=400, out_size=200, overlap=96)
    stitcher = DenseStitcher.for_tiles(tiles, 1000, 600, model_stride=4, kind=DenseKind.DENSITY)
    assert stitcher.stride == 8 and stitcher.shape == (1, 75, 125)


def test_logit_stitch_averages_values():
    tiles = plan_grid(300, 200, window=200, out_size=100, overlap=100)
    stitcher = DenseStitcher(300, 200, stride=4, channels=2, kind=DenseKind.LOGITS)
    for i, t in enumerate(tiles):
        stitcher.add(t, np.full((2, 25, 25), float(i)))  # 200 px windows at 8 px per cell
    result = stitcher.result()
    assert result.shape == (2, 50, 75)
    assert result[0, 0, 0] == 0 and result[0, 0, -1] == 1  # first and second tile alone
    assert result[0, 0, 30] == pytest.approx(0.5)  # x 120-128: both tiles
