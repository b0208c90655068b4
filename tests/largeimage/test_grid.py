"""Tile grids: coverage, constant shape, bounds, the keep partition, fit-grid exactness."""

from __future__ import annotations

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
    """(image w, h, tiles, overlap used, drop_border) for a random valid grid."""
    window = draw(st.tuples(st.integers(16, 600), st.integers(16, 600)))
    # Up to ~12 windows a side: every geometry case, without thousands of tiles per example.
    image_w, image_h = draw(st.integers(1, 12 * window[0])), draw(st.integers(1, 12 * window[1]))
    out = draw(st.tuples(st.integers(8, 400), st.integers(8, 400)))
    # Overlaps up to half the window: a larger one only multiplies tiles (stride 1 at most).
    if draw(st.booleans()):
        drop, overlap = draw(st.integers(1, min(window) // 4)), 0
    else:
        drop, overlap = 0, draw(st.integers(0, min(window) // 2))
    tiles = plan_grid(image_w, image_h, window=window, out_size=out, overlap=overlap, drop_border=drop)
    return image_w, image_h, tiles, drop


def axis(tiles, attr):
    return sorted({getattr(t, attr) for t in tiles})


@settings(max_examples=150, deadline=None)
@given(grids())
def test_tiles_share_one_shape_and_stay_inside_except_small_axes(grid):
    image_w, image_h, tiles, _ = grid
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
    assert len(tiles) == len(xs) * len(ys)  # a full row x column product, row-major
    assert [(t.y, t.x) for t in tiles] == sorted((t.y, t.x) for t in tiles)


@settings(max_examples=150, deadline=None)
@given(grids(), st.integers(0, 2**31 - 1))
def test_windows_cover_the_image_and_keep_regions_partition_it(grid, seed):
    """Without drop_border a tile keeps its whole window (duplicates go to merge); with it
    the keep regions partition the image: every point is kept by exactly one tile."""
    image_w, image_h, tiles, drop = grid
    rng = np.random.default_rng(seed)
    special = [
        [0, 0], [image_w - 1e-6, image_h - 1e-6], [0, image_h - 1e-6], [image_w - 1e-6, 0],
        *([t.x + t.w - 1e-6, t.y] for t in tiles if t.x + t.w <= image_w),  # window edges
        *([k, 0] for t in tiles for k in (t.keep[0], t.keep[2]) if k < image_w),  # keep edges
    ]
    points = np.concatenate([rng.uniform(0, [image_w, image_h], (300, 2)), np.array(special, np.float64)])
    win = np.array([[t.x, t.y, t.x + t.w, t.y + t.h] for t in tiles], np.float64)
    keep = np.array([t.keep for t in tiles], np.float64)
    inside = lambda r: (points[:, None, :] >= r[None, :, :2]) & (points[:, None, :] < r[None, :, 2:])  # noqa: E731
    assert inside(win).all(axis=2).any(axis=1).all()
    keepers = inside(keep).all(axis=2).sum(axis=1)
    assert (keepers == 1).all() if drop else (keepers >= 1).all()


@settings(max_examples=150, deadline=None)
@given(grids(), st.data())
def test_drop_border_keeps_each_small_object_once_and_whole(grid, data):
    image_w, image_h, tiles, drop = grid
    if not drop:
        return
    for t in tiles:  # keep edges facing a neighbour lie at least `drop` inside the window
        assert t.keep[0] == 0 or t.keep[0] - t.x >= drop
        assert t.keep[1] == 0 or t.keep[1] - t.y >= drop
        assert t.keep[2] == image_w or t.x + t.w - t.keep[2] >= drop
        assert t.keep[3] == image_h or t.y + t.h - t.keep[3] >= drop
    cx = data.draw(st.floats(0, image_w, exclude_max=True))
    cy = data.draw(st.floats(0, image_h, exclude_max=True))
    half = data.draw(st.floats(0, drop)), data.draw(st.floats(0, drop))
    box = np.array([[cx - half[0], cy - half[1], cx + half[0], cy + half[1]]])
    keepers = [t for t in tiles if keep_mask(box, t)[0]]
    assert len(keepers) == 1
    t = keepers[0]
    clipped = np.clip(box[0], 0, [image_w, image_h, image_w, image_h])
    assert t.x <= clipped[0] and clipped[2] <= t.x + t.w
    assert t.y <= clipped[1] and clipped[3] <= t.y + t.h


def test_non_overlapping_grid_and_shifted_edge_tile():
    tiles = plan_grid(4000, 1600, window=1600, out_size=800)
    assert [t.x for t in tiles[:3]] == [0, 1600, 2400]  # last window shifted back, full size
    assert {t.y for t in tiles} == {0}
    assert all(t.scale == (0.5, 0.5) for t in tiles)
    assert tiles[1].keep == (1600, 0, 3200, 1600)  # no drop: keep the whole window


def test_drop_border_uses_overlap_of_twice_the_border():
    tiles = plan_grid(5000, 1000, window=1600, out_size=800, drop_border=100)
    assert [t.x for t in tiles] == [0, 1400, 2800, 3400]
    assert [(t.keep[0], t.keep[2]) for t in tiles] == [(0, 1500), (1500, 2900), (2900, 3900), (3900, 5000)]


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
        {"window": 100, "out_size": 8, "drop_border": 50},
        {"window": 100, "out_size": 8, "overlap": 30, "drop_border": 20},
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
