"""Tile grids over a large image, and the mapping from tile outputs back to the image.

A `Tile` is a window of the full image (level-0 pixels) that is read and resized to the
model input (`out_w` x `out_h`), plus a *keep region*: the part of the image whose
detections this tile is responsible for. Pure functions, numpy only.

Two planners:

- `plan_grid`: sliding windows of a fixed size (S0: 1600 px windows -> 800 px inputs).
  Edge tiles keep the full window size and are shifted back inside the image, as SAHI's
  `get_slice_bboxes` does, so every tile has the same shape and the same scale.
- `plan_fit_grid`: S3's `--fit-grid KxL`: the image is split exactly into K rows x L
  columns, each resized to the model input: no strip is wasted and no tile overlaps.

`plan_grid` options:

- `overlap=PX`: neighbouring windows share at least PX pixels (SAHI-style overlapping grid).
- `drop_border=PX` (S0's "drop border", a *speed* step in its time table: 303 s -> 260 s):
  up to PX pixels of the image's outer border on each side may be left unread when that
  saves windows. Slides have blank margins; a 12000 px image with 1600 px windows takes
  8 x 8 = 64 windows with full-size edge tiles, but 7 x 7 = 49 when the 400 px a side that
  do not fill a whole window are dropped. Along an axis of length L the grid then has the
  fewest windows that cover [PX, L - PX] with the requested overlap,
  n = max(1, ceil((L - 2*PX - overlap) / (window - overlap))), centred: the skipped margin
  is (L - span) / 2 per side. When n windows span more than L, the first and last are
  shifted inside as usual. Every pixel farther than PX from the border is covered.

The keep rule, exactly:
    A detection (in full-image pixels, clipped to the image) is kept by tile T iff its box
    centre (cx, cy) satisfies keep_x1 <= cx < keep_x2 and keep_y1 <= cy < keep_y2.
    Along each axis the keep intervals of consecutive tiles meet at the middle of their
    overlap, `start_next + overlap // 2`, where overlap is how much the two windows really
    share (edge tiles shifted back share more); the first interval starts at 0 and the
    last ends at the image size. The keep regions therefore partition the image: every
    point is kept by exactly one tile. Every keep edge facing a neighbour lies at least
    overlap // 2 inside the window edge it faces, so an object at most 2 * (overlap // 2)
    wide and high whose centre a tile keeps lies wholly inside that tile's window: the
    partial detections of such an object cut by the neighbour's window edge have their
    centre outside the neighbour's keep region and are dropped. No merge is needed for
    objects up to the overlap; larger cut objects come out as a full and a partial box, or
    (without overlap) as two partial boxes, for `merge` to resolve.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from leanvision.core.enums import ResizeMode
from leanvision.core.errors import ConfigError
from leanvision.core.letterbox import fit

# Tiles one image may be planned into: 1600 px windows over a 100000 x 100000 px slide are
# ~3900; a million means a window far too small for the image (or a hostile header).
MAX_TILES = 1_000_000

Size = int | tuple[int, int]


@dataclass(frozen=True)
class Tile:
    """One window of the image and how it maps to the model input.

    Attributes:
        x, y, w, h: the window in full-image level-0 pixels. It lies inside the image
            except for images smaller than the window along an axis: there the one tile of
            that axis starts at 0 and extends past the image; readers fill the outside
            with a constant (see `readers.Reader.read`).
        out_w, out_h: the size the window is resized to (the model input), pixels.
        keep: (x1, y1, x2, y2) half-open region, full-image pixels: detections whose
            centre lies in it belong to this tile (see the module docstring).
        row, col: position in the grid.
    """

    x: int
    y: int
    w: int
    h: int
    out_w: int
    out_h: int
    keep: tuple[int, int, int, int]
    row: int = 0
    col: int = 0

    @property
    def scale_x(self) -> float:
        """Output pixels per image pixel along x (0.5 for 1600 px -> 800 px)."""
        return self.out_w / self.w

    @property
    def scale_y(self) -> float:
        return self.out_h / self.h

    @property
    def scale(self) -> tuple[float, float]:
        """(scale_x, scale_y); equal unless a fit grid stretches the image."""
        return self.scale_x, self.scale_y

    @property
    def window(self) -> tuple[int, int, int, int]:
        """(x, y, w, h), the arguments of `Reader.read`."""
        return self.x, self.y, self.w, self.h


def _pair(value: Size, name: str) -> tuple[int, int]:
    """An int or (w, h) pair as a validated (w, h) of positive ints."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v <= 0 for v in pair):
        raise ConfigError(f"{name} must be a positive int or a (width, height) pair, got {value!r}")
    return int(pair[0]), int(pair[1])


def _axis_starts(length: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis; the last is shifted back to end at `length`."""
    if length <= window:
        return [0]
    count = math.ceil((length - window) / stride) + 1
    return [min(i * stride, length - window) for i in range(count)]


def _axis_starts_dropping(length: int, window: int, stride: int, drop: int) -> list[int]:
    """Window starts covering [drop, length - drop] with the fewest windows, centred.

    n windows at `stride` span n * stride + overlap; the count is the smallest whose span
    reaches length - 2 * drop. A span longer than the image (first start < 0) has its
    first and last windows shifted inside: |first| < stride / 2, so no two starts coincide.
    """
    if length <= window:
        return [0]
    overlap = window - stride
    count = max(1, math.ceil((length - 2 * drop - overlap) / stride))
    first = (length - (count * stride + overlap)) // 2
    return [min(max(first + i * stride, 0), length - window) for i in range(count)]


def _axis_keep(starts: Sequence[int], window: int, length: int) -> list[tuple[int, int]]:
    """Half-open keep intervals partitioning [0, length): cuts at mid-overlap."""
    cuts = [0]
    for prev, start in itertools.pairwise(starts):
        overlap = max(0, prev + window - start)
        cuts.append(start + overlap // 2)
    cuts.append(length)
    return list(itertools.pairwise(cuts))


def _check_grid_options(window: tuple[int, int], overlap: int, drop_border: int) -> None:
    if overlap < 0 or drop_border < 0:
        raise ConfigError(f"overlap and drop_border must be >= 0, got {overlap} and {drop_border}")
    if overlap >= min(window):
        raise ConfigError(f"overlap {overlap} px must be smaller than the window {window}")


def _starts(length: int, window: int, overlap: int, drop_border: int) -> list[int]:
    stride = window - overlap
    if drop_border:
        return _axis_starts_dropping(length, window, stride, drop_border)
    return _axis_starts(length, window, stride)


def plan_grid(
    image_w: int,
    image_h: int,
    *,
    window: Size,
    out_size: Size,
    overlap: int = 0,
    drop_border: int = 0,
) -> list[Tile]:
    """Sliding-window tiles over an image, row-major, all of the same window and output size.

    Args:
        image_w, image_h: image size, level-0 pixels (after EXIF orientation).
        window: window side, or (w, h), level-0 pixels.
        out_size: model input side, or (w, h); each window is resized to it.
        overlap: pixels shared by neighbouring windows, at least (edge tiles shifted back
            share more). Keep regions meet at mid-overlap (module docstring): objects up to
            the overlap are kept once, whole, with no merge.
        drop_border: S0's border drop, pixels: up to this many pixels of the image's outer
            border on each side may be left unread when that saves windows (module
            docstring). 0: the whole image is covered.

    An image smaller than the window along an axis gets one tile along it, starting at 0
    and extending past the image (the reader pads it), so the scale stays that of the grid.
    """
    win = _pair(window, "window")
    out = _pair(out_size, "out_size")
    image = _pair((image_w, image_h), "image size")
    _check_grid_options(win, overlap, drop_border)
    stride = (win[0] - overlap, win[1] - overlap)
    planned = math.ceil(image[0] / stride[0]) * math.ceil(image[1] / stride[1])
    if planned > MAX_TILES:
        # A header may declare any size; planning cannot be allowed to exhaust memory first.
        raise ConfigError(f"a {image[0]}x{image[1]} image in {win[0]}x{win[1]} windows would be about {planned} tiles, "
                          f"over the limit of {MAX_TILES}: use a larger window (or check the image's declared size)")
    xs = _starts(image[0], win[0], overlap, drop_border)
    ys = _starts(image[1], win[1], overlap, drop_border)
    keep_x, keep_y = _axis_keep(xs, win[0], image[0]), _axis_keep(ys, win[1], image[1])
    return [
        Tile(x, y, win[0], win[1], out[0], out[1], (kx[0], ky[0], kx[1], ky[1]), row=r, col=c)
        for r, (y, ky) in enumerate(zip(ys, keep_y, strict=True))
        for c, (x, kx) in enumerate(zip(xs, keep_x, strict=True))
    ]


def _fit_edges(length: int, parts: int) -> list[int]:
    return [round(i * length / parts) for i in range(parts + 1)]


def plan_fit_grid(image_w: int, image_h: int, *, rows: int, cols: int, out_size: Size) -> list[Tile]:
    """S3's fit grid: split the image exactly into `rows` x `cols` tiles, each resized to the input.

    Equivalent to resizing the image to (cols*out_w, rows*out_h) and cutting it into model
    inputs, without materialising the resized image. Tile edges are at round(i*W/cols), so
    windows differ by at most one pixel when the image does not divide evenly; each tile's
    `scale` is exact for its own window. Tiles do not overlap; each keeps its own window.

    Args:
        image_w, image_h: image size, level-0 pixels.
        rows, cols: the grid (S3 used 2x2 on up-to-2048 px images with 576x768 inputs).
        out_size: model input side, or (w, h).
    """
    out = _pair(out_size, "out_size")
    image = _pair((image_w, image_h), "image size")
    grid = _pair((cols, rows), "fit grid (cols, rows)")
    if grid[0] > image[0] or grid[1] > image[1]:
        raise ConfigError(f"a {rows}x{cols} fit grid needs an image of at least {cols}x{rows} px")
    xe, ye = _fit_edges(image[0], grid[0]), _fit_edges(image[1], grid[1])
    return [
        Tile(x0, y0, x1 - x0, y1 - y0, out[0], out[1], (x0, y0, x1, y1), row=r, col=c)
        for r, (y0, y1) in enumerate(itertools.pairwise(ye))
        for c, (x0, x1) in enumerate(itertools.pairwise(xe))
    ]


def plan_whole_image(image_w: int, image_h: int, *, out_size: Size, mode: ResizeMode) -> list[Tile]:
    """One tile for a model that sees the whole image fitted to its input (classification).

    The tile is read at the size the card's resize mode gives it inside the input, so the
    predictor only pads it: stretch reads the image at the input size; letterbox at its
    aspect-kept size (padded right / bottom by the predictor); centre crop reads the central
    window of the input's aspect at the input size.
    """
    out_w, out_h = _pair(out_size, "out_size")
    width, height = _pair((image_w, image_h), "image size")
    transform = fit((height, width), (out_h, out_w), ResizeMode(mode))  # the predictor's own rounding
    if ResizeMode(mode) is ResizeMode.CENTER_CROP:
        win_w = min(width, max(1, round(out_w / transform.scale_x)))
        win_h = min(height, max(1, round(out_h / transform.scale_y)))
        x0, y0 = (width - win_w) // 2, (height - win_h) // 2
        return [Tile(x0, y0, win_w, win_h, out_w, out_h, (0, 0, width, height))]
    resized_h, resized_w = transform.resized_hw
    return [Tile(0, 0, width, height, resized_w, resized_h, (0, 0, width, height))]


def tile_params(tiles: Tile | Sequence[Tile]) -> np.ndarray:
    """(T, 4) float64 per tile: x, y, image pixels per output pixel along x and y."""
    tiles = [tiles] if isinstance(tiles, Tile) else tiles
    return np.array([(t.x, t.y, t.w / t.out_w, t.h / t.out_h) for t in tiles], np.float64).reshape(-1, 4)


def _per_item(tiles: Tile | Sequence[Tile], tile_index: np.ndarray | None, n: int) -> np.ndarray:
    """(n, 4) tile parameters for each item: one tile for all, or tiles[tile_index]."""
    params = tile_params(tiles)
    if tile_index is None:
        if len(params) != 1:
            raise ValueError("several tiles given: pass tile_index, the tile of each item")
        return np.broadcast_to(params[0], (n, 4))
    index = np.asarray(tile_index, np.int64).reshape(-1)
    if len(index) != n:
        raise ValueError(f"tile_index has {len(index)} entries for {n} items")
    return params[index]


def boxes_to_image(
    boxes: np.ndarray, tiles: Tile | Sequence[Tile], tile_index: np.ndarray | None = None
) -> np.ndarray:
    """Map boxes from tile-output pixels to full-image pixels.

    Args:
        boxes: (N, 4) xyxy in the pixels of the model input (out_w x out_h) of their tile.
        tiles: one tile (all boxes from it), or the tile list.
        tile_index: (N,) index into `tiles` of each box's tile, when `tiles` is a list.

    Returns:
        (N, 4) float32 xyxy in full-image level-0 pixels: x = tile.x + u * tile.w / out_w.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    p = _per_item(tiles, tile_index, len(boxes))
    scale = np.concatenate([p[:, 2:4], p[:, 2:4]], axis=1)
    offset = np.concatenate([p[:, 0:2], p[:, 0:2]], axis=1)
    return (boxes * scale + offset).astype(np.float32)


def points_to_image(
    points: np.ndarray, tiles: Tile | Sequence[Tile], tile_index: np.ndarray | None = None
) -> np.ndarray:
    """Map (N, 2) x, y points from tile-output pixels to full-image pixels (float32)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    p = _per_item(tiles, tile_index, len(points))
    return (points * p[:, 2:4] + p[:, 0:2]).astype(np.float32)


def keep_mask(
    boxes: np.ndarray, tiles: Tile | Sequence[Tile], tile_index: np.ndarray | None = None
) -> np.ndarray:
    """(N,) bool: the centre of each (N, 4) xyxy full-image box lies in its tile's keep region."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    tiles = [tiles] if isinstance(tiles, Tile) else tiles
    keeps = np.array([t.keep for t in tiles], np.float64).reshape(-1, 4)
    index = np.zeros(len(boxes), np.int64) if tile_index is None else np.asarray(tile_index, np.int64)
    if tile_index is None and len(keeps) != 1:
        raise ValueError("several tiles given: pass tile_index, the tile of each box")
    k = keeps[index]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    return np.all((centre >= k[:, :2]) & (centre < k[:, 2:]), axis=1)
