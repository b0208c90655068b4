"""Tile grids: coverage, constant shape, bounds, the keep partition, fit-grid exactness."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanvision.core.errors import ConfigError
from leanvision.largeimage.grid import (
    Tile,
    boxes_to_image,
    keep_mask,
    plan_fit_grid,
    plan_grid,
    points_to_image,
)


@st.composite
def grids(draw):
    """(image w, h, tiles, overlap, drop_border) for a random valid grid."""
    window = draw(st.tuples(st.integers(16, 600), st.integers(16, 600)))
    # Up to ~12 windows a side: every geometry case, without thousands of tiles per example.
    image_w, image_h = draw(st.integers(1, 12 * window[0])), draw(st.integers(1, 12 * window[1]))
    out = draw(st.tuples(st.integers(8, 400), st.integers(8, 400)))
    # Overlaps up to half the window: a larger one only multiplies tiles (stride 1 at most).
    overlap = draw(st.integers(0, min(window) // 2))
    drop = draw(st.integers(1, max(window)) if draw(st.booleans()) else st.just(0))
    tiles = plan_grid(image_w, image_h, window=window, out_size=out, overlap=overlap, drop_border=drop)
    return image_w, image_h, tiles, overlap, drop


def axis(tiles, attr):
    return sorted({getattr(t, attr) for t in tiles})


@settings(max_examples=150, deadline=None)
@given(grids())
def test_tiles_share_one_shape_and_stay_inside_except_small_axes(grid):
    image_w, image_h, tiles, _, _ = grid
    assert len({(t.w, t.h, t.out_w, t.out_h) for t in tiles}) == 1
    w, h = tiles[0].w, tiles[0].h
    for t in tiles:
        if image_w >= w:
            assert t.x >= 0 and t.x + w <= image_w
        else:  # documented: one tile at 0, extending past the image (padded)
            assert t.x == 0
        if image_h >= h:
            assert t.y >= 0 and t.y + h <= image_h
        else:
            assert t.y == 0
    xs, ys = axis(tiles, "x"), axis(tiles, "y")
    assert len(tiles) == len(xs) * len(ys)  # a full row x column product, row-major, no duplicate
    assert [(t.y, t.x) for t in tiles] == sorted((t.y, t.x) for t in tiles)


def inside(points, rects):
    """(P, R) bool: point p lies in half-open rectangle r (x1, y1, x2, y2)."""
    return ((points[:, None, :] >= rects[None, :, :2]) & (points[:, None, :] < rects[None, :, 2:])).all(axis=2)


@settings(max_examples=150, deadline=None)
@given(grids(), st.integers(0, 2**31 - 1))
def test_windows_cover_all_but_the_dropped_border_and_keep_regions_partition_the_image(grid, seed):
    """Every pixel farther than drop_border from the border is in a window (all of them
    without drop_border); every point of the image is kept by exactly one tile."""
    image_w, image_h, tiles, _, drop = grid
    rng = np.random.default_rng(seed)
    special = [
        [0, 0], [image_w - 1e-6, image_h - 1e-6], [0, image_h - 1e-6], [image_w - 1e-6, 0],
        *([t.x + t.w - 1e-6, t.y] for t in tiles if t.x + t.w <= image_w),  # window edges
        *([k, 0] for t in tiles for k in (t.keep[0], t.keep[2]) if k < image_w),  # keep edges
    ]
    points = np.concatenate([rng.uniform(0, [image_w, image_h], (300, 2)), np.array(special, np.float64)])
    win = np.array([[t.x, t.y, t.x + t.w, t.y + t.h] for t in tiles], np.float64)
    keep = np.array([t.keep for t in tiles], np.float64)
    inner = np.all((points >= drop) & (points < np.array([image_w, image_h]) - drop), axis=1)
    assert inside(points[inner], win).any(axis=1).all()
    assert (inside(points, keep).sum(axis=1) == 1).all()


@settings(max_examples=150, deadline=None)
@given(grids())
def test_drop_border_uses_the_fewest_windows_and_skips_at_most_the_border(grid):
    image_w, image_h, tiles, overlap, drop = grid
    for length, starts, win in ((image_w, axis(tiles, "x"), tiles[0].w), (image_h, axis(tiles, "y"), tiles[0].h)):
        if length <= win:
            assert starts == [0]
            continue
        stride = win - overlap
        if drop:  # n - 1 windows could not cover [drop, length - drop]
            assert len(starts) == 1 or (len(starts) - 1) * stride + overlap < length - 2 * drop
            assert starts[0] <= drop and starts[-1] + win >= length - drop
            left, right = starts[0], length - starts[-1] - win  # centred: margins differ by <= 1
            assert abs(left - right) <= 1 or 0 in (left, right)
        else:
            assert starts[0] == 0 and starts[-1] + win == length
        assert all(b - a <= stride for a, b in itertools.pairwise(starts))  # overlap >= asked


@settings(max_examples=150, deadline=None)
@given(grids(), st.data())
def test_overlap_keeps_each_small_object_once_and_whole(grid, data):
    image_w, image_h, tiles, overlap, _drop = grid
    half_max = overlap // 2
    for t in tiles:  # keep edges facing a neighbour lie at least overlap // 2 inside the window
        assert t.keep[0] == 0 or t.keep[0] - t.x >= half_max
        assert t.keep[1] == 0 or t.keep[1] - t.y >= half_max
        assert t.keep[2] == image_w or t.x + t.w - t.keep[2] >= half_max
        assert t.keep[3] == image_h or t.y + t.h - t.keep[3] >= half_max
    # An object inside the covered area, at most 2 * (overlap // 2) a side.
    lo = np.array([min(t.x for t in tiles), min(t.y for t in tiles)], np.float64)
    hi = np.minimum([max(t.x + t.w for t in tiles), max(t.y + t.h for t in tiles)], [image_w, image_h])
    half = np.array([data.draw(st.floats(0, half_max)), data.draw(st.floats(0, half_max))])
    if np.any(hi - lo < 2 * half):
        return
    centre = np.array([data.draw(st.floats(lo[i] + half[i], hi[i] - half[i])) for i in range(2)])
    box = np.concatenate([centre - half, centre + half])[None]
    if np.any(centre >= [image_w, image_h]):
        return
    keepers = [t for t in tiles if keep_mask(box, t)[0]]
    assert len(keepers) == 1
    t, eps = keepers[0], 1e-9  # centre +- half may round past the covered area's edge
    assert t.x <= box[0, 0] + eps and box[0, 2] <= t.x + t.w + eps
    assert t.y <= box[0, 1] + eps and box[0, 3] <= t.y + t.h + eps


def test_non_overlapping_grid_and_shifted_edge_tile():
    tiles = plan_grid(4000, 1600, window=1600, out_size=800)
    assert [t.x for t in tiles[:3]] == [0, 1600, 2400]  # last window shifted back, full size
    assert {t.y for t in tiles} == {0}
    assert all(t.scale == (0.5, 0.5) for t in tiles)
    # the shifted tile shares 800 px with its neighbour: keep regions meet in the middle
    assert [(t.keep[0], t.keep[2]) for t in tiles] == [(0, 1600), (1600, 2800), (2800, 4000)]


def test_s0_drop_border_takes_49_windows_instead_of_64():
    """PITFALLS.md: 49-64 windows of 1600 px for a 12000 px image (S0: drop border)."""
    assert len(plan_grid(12000, 12000, window=1600, out_size=800)) == 64
    tiles = plan_grid(12000, 12000, window=1600, out_size=800, drop_border=400)
    assert len(tiles) == 49
    assert axis(tiles, "x") == [400 + 1600 * i for i in range(7)]  # 400 px skipped a side
    assert tiles[0].keep[:2] == (0, 0) and tiles[-1].keep[2:] == (12000, 12000)
    assert len(plan_grid(12000, 12000, window=1600, out_size=800, drop_border=399)) == 64


def test_drop_border_with_overlap_and_a_span_longer_than_the_image():
    tiles = plan_grid(5000, 1000, window=1600, out_size=800, overlap=100, drop_border=100)
    # ceil((5000 - 200 - 100) / 1500) = 4 windows span 6100 px: first and last shifted inside
    assert [t.x for t in tiles] == [0, 950, 2450, 3400]
    assert [(t.keep[0], t.keep[2]) for t in tiles] == [(0, 1275), (1275, 2500), (2500, 3725), (3725, 5000)]


def test_small_image_gets_one_padded_tile():
    (tile,) = plan_grid(500, 300, window=1600, out_size=800, drop_border=50)
    assert (tile.x, tile.y, tile.w, tile.h) == (0, 0, 1600, 1600)
    assert tile.keep == (0, 0, 500, 300)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 0, "out_size": 8},
        {"window": 100, "out_size": (8, 0)},
        {"window": 100, "out_size": 8, "overlap": 100},
        {"window": 100, "out_size": 8, "drop_border": -1},
        {"window": 100, "out_size": 8, "overlap": -1},
    ],
)
def test_bad_grid_options_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        plan_grid(1000, 1000, **kwargs)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(1, 6), st.integers(1, 6),
       st.tuples(st.integers(8, 800), st.integers(8, 800)))
def test_fit_grid_splits_the_image_exactly(image_w, image_h, rows, cols, out):
    if cols > image_w or rows > image_h:
        with pytest.raises(ConfigError):
            plan_fit_grid(image_w, image_h, rows=rows, cols=cols, out_size=out)
        return
    tiles = plan_fit_grid(image_w, image_h, rows=rows, cols=cols, out_size=out)
    assert len(tiles) == rows * cols
    assert sum(t.w * t.h for t in tiles) == image_w * image_h  # no overlap, no gap...
    assert all(t.keep == (t.x, t.y, t.x + t.w, t.y + t.h) for t in tiles)
    for t in tiles:  # ...each inside, each resized to exactly one model input
        assert t.x >= 0 and t.x + t.w <= image_w and t.y >= 0 and t.y + t.h <= image_h
        assert (t.out_w, t.out_h) == out
        assert abs(t.w - image_w / cols) <= 1 and abs(t.h - image_h / rows) <= 1
    assert {t.x + t.w for t in tiles if t.col == cols - 1} == {image_w}


def test_fit_grid_is_s3s_2x2():
    tiles = plan_fit_grid(2048, 2048, rows=2, cols=2, out_size=(768, 576))
    assert [(t.x, t.y, t.w, t.h) for t in tiles] == [(0, 0, 1024, 1024), (1024, 0, 1024, 1024), (0, 1024, 1024, 1024), (1024, 1024, 1024, 1024)]
    assert tiles[0].scale == (0.75, 0.5625)


def test_boxes_and_points_map_back_per_tile():
    tiles = [Tile(100, 50, 400, 200, 200, 100, (100, 50, 500, 250)), Tile(0, 0, 300, 300, 600, 600, (0, 0, 300, 300))]
    boxes = np.array([[10, 20, 30, 40], [10, 20, 30, 40], [0, 0, 600, 600]], np.float32)
    index = np.array([0, 1, 0])
    expected = np.array([[120, 90, 160, 130], [5, 10, 15, 20], [100, 50, 1300, 1250]], np.float32)
    np.testing.assert_allclose(boxes_to_image(boxes, tiles, index), expected)
    np.testing.assert_allclose(points_to_image(boxes[:, :2], tiles, index), expected[:, :2])
    np.testing.assert_allclose(boxes_to_image(boxes[:1], tiles[0]), expected[:1])
    with pytest.raises(ValueError, match="tile_index"):
        boxes_to_image(boxes, tiles)
    assert keep_mask(expected, tiles, index).tolist() == [True, True, False]  # centre (700, 650)


def test_a_plan_of_more_tiles_than_memory_allows_is_refused_before_it_is_built():
    from leanvision.core.errors import ConfigError

    assert len(plan_grid(100000, 100000, window=1600, out_size=800)) < 5000
    with pytest.raises(ConfigError, match="larger window"):
        plan_grid(100000, 100000, window=16, out_size=16)
