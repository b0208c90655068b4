"""Drawing helpers shared by the generators: noise fields and irregular blob outlines.

The noise is *value noise on a hashed lattice*: the value at a pixel depends only on its
global coordinates and a seed, never on the region being rendered. A slide rendered tile by
tile therefore has no seams, and any tile can be rendered alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

_SUBPIXEL_BITS = 4  # cv2 drawing with 1/16 px vertex precision
_SUBPIXEL = float(1 << _SUBPIXEL_BITS)


def _hash01(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) float32 per integer lattice point (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= iy.astype(np.int64).view(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= np.uint64((seed * 0x165667B19E3779F9) & 0xFFFFFFFFFFFFFFFF)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _axis(start: int, length: int, scale: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Lattice cell index (relative to the first), smoothstep weight, first cell, cell count."""
    u = (np.arange(start, start + length, dtype=np.float64) + 0.5) / scale
    cell = np.floor(u).astype(np.int64)
    t = (u - cell).astype(np.float32)
    first = int(cell[0])
    return cell - first, t * t * (3 - 2 * t), first, int(cell[-1]) - first + 2


def value_noise(x0: int, y0: int, width: int, height: int, scale: float, seed: int, *,
                out: np.ndarray | None = None, scratch: np.ndarray | None = None) -> np.ndarray:
    """Smooth noise over the pixel region [x0, x0 + width) x [y0, y0 + height).

    Args:
        x0, y0: global pixel coordinates of the region's top-left corner.
        width, height: region size in pixels.
        scale: lattice spacing in pixels (the feature size).
        seed: selects the field; the same seed gives the same value at the same pixel.
        out, scratch: optional (height, width) float32 arrays to reuse; fresh large arrays
            cost more in page faults than the arithmetic done on them (PITFALLS.md).

    Returns:
        (height, width) float32 in [0, 1) (`out` if given).
    """
    ix, tx, fx, nx = _axis(x0, width, scale)
    iy, ty, fy, ny = _axis(y0, height, scale)
    gy, gx = np.meshgrid(np.arange(fy, fy + ny), np.arange(fx, fx + nx), indexing="ij")
    lattice = _hash01(gx, gy, seed)
    # Interpolate along x on the small lattice, then along y into the full-size output.
    rows, step = lattice.take(ix, axis=1), lattice.take(ix + 1, axis=1)
    step -= rows
    step *= tx
    rows += step
    out = np.empty((height, width), np.float32) if out is None else out
    scratch = np.empty((height, width), np.float32) if scratch is None else scratch
    np.take(rows, iy, axis=0, out=out, mode="clip")  # "clip": no safety copy
    np.take(rows, iy + 1, axis=0, out=scratch, mode="clip")
    scratch -= out
    scratch *= ty[:, None]
    out += scratch
    return out


def value_noise_at(xs: np.ndarray, ys: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """`value_noise` sampled at (N,) pixel coordinates; (N,) float32 in [0, 1)."""
    u = (np.asarray(xs, np.float64) + 0.5) / scale
    v = (np.asarray(ys, np.float64) + 0.5) / scale
    cx, cy = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    tx, ty = (u - cx).astype(np.float32), (v - cy).astype(np.float32)
    tx, ty = tx * tx * (3 - 2 * tx), ty * ty * (3 - 2 * ty)
    top = _hash01(cx, cy, seed) * (1 - tx) + _hash01(cx + 1, cy, seed) * tx
    bottom = _hash01(cx, cy + 1, seed) * (1 - tx) + _hash01(cx + 1, cy + 1, seed) * tx
    return top * (1 - ty) + bottom * ty


def fractal_noise(x0: int, y0: int, width: int, height: int, scale: float, seed: int,
                  octaves: int = 3, *, out: np.ndarray | None = None,
                  scratch: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Sum of `octaves` value-noise layers, each half the scale and weight of the last.

    `out` and the two `scratch` arrays are optional (height, width) float32 arrays to reuse.

    Returns:
        (height, width) float32, normalised to [0, 1).
    """
    layer, step = scratch if scratch is not None else (None, None)
    total = value_noise(x0, y0, width, height, scale, seed, out=out, scratch=step)
    weight_sum = 1.0
    for octave in range(1, octaves):
        layer = value_noise(x0, y0, width, height, scale / 2**octave, seed + 7919 * octave,
                            out=layer, scratch=step)
        layer *= np.float32(0.5**octave)
        total += layer
        weight_sum += 0.5**octave
    total *= np.float32(1 / weight_sum)
    return total


def blob_vertices(cx: np.ndarray, cy: np.ndarray, rx: np.ndarray, ry: np.ndarray,
                  angle: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """Outlines of irregular ellipses, vectorised over N blobs.

    Args:
        cx, cy: (N,) centres in pixels.
        rx, ry: (N,) semi-axes in pixels.
        angle: (N,) rotation in radians.
        jitter: (N, K) relative radius change at each of K vertices (0 = a true ellipse).

    Returns:
        (N, K, 2) float32 vertices (x, y) in pixels.
    """
    k = jitter.shape[1]
    theta = np.linspace(0, 2 * np.pi, k, endpoint=False, dtype=np.float32)
    scale = 1 + jitter.astype(np.float32)
    ex = rx[:, None] * np.cos(theta)[None] * scale
    ey = ry[:, None] * np.sin(theta)[None] * scale
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x = cx[:, None] + ex * cos - ey * sin
    y = cy[:, None] + ex * sin + ey * cos
    return np.stack([x, y], axis=-1).astype(np.float32)


def smooth_jitter(rng: np.random.Generator, n: int, k: int, amount: np.ndarray | float) -> np.ndarray:
    """(n, k) radius jitter that varies smoothly around the outline (circular smoothing).

    `amount` (scalar or (n,)) is the standard deviation of the relative radius change.
    """
    raw = rng.standard_normal((n, k)).astype(np.float32)
    smooth = (np.roll(raw, 1, axis=1) + 2 * raw + np.roll(raw, -1, axis=1)) / np.float32(np.sqrt(6.0))
    return smooth * np.asarray(amount, np.float32).reshape(-1, 1)


def polygon_masks(vertices: np.ndarray, amounts: np.ndarray, rim: float = 0.0) -> Iterator[tuple[np.ndarray, int, int]]:
    """Anti-aliased coverage of N polygons, each in a patch just large enough to hold it.

    A patch's origin is an integer pixel, so the same polygon gives the same patch wherever
    it is later pasted: tiles rendered separately agree where a polygon crosses them.

    Args:
        vertices: (N, K, 2) float x, y in pixels.
        amounts: (N,) value of a fully covered pixel, per polygon.
        rim: extra relative value on a 1 px outline, for membranes and folds.

    Yields:
        (patch, x, y): (h, w) float32 patch in [0, amount * (1 + rim)] and its top-left pixel.
    """
    lo = np.floor(vertices.min(axis=1)).astype(np.int64) - 1
    size = np.ceil(vertices.max(axis=1)).astype(np.int64) - lo + 2
    pts = np.round((vertices - lo[:, None, :]) * _SUBPIXEL).astype(np.int32)
    # The fill is drawn below full scale and the outline at full scale over it (cv2 blends
    # anti-aliased lines into what is there), so one 8-bit patch holds both.
    fill = round(255 / (1 + rim))
    scales = np.asarray(amounts, np.float32) * np.float32((1 + rim) / 255)
    for i in range(len(vertices)):
        mask = np.zeros((int(size[i, 1]), int(size[i, 0])), np.uint8)
        cv2.fillPoly(mask, [pts[i]], fill, lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
        if rim > 0:
            cv2.polylines(mask, [pts[i]], True, 255, 1, lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
        patch = mask.astype(np.float32)
        patch *= scales[i]
        yield patch, int(lo[i, 0]), int(lo[i, 1])


def paste_add(canvas: np.ndarray, x0: int, y0: int, patch: np.ndarray, x: int, y: int) -> None:
    """Add `patch` (placed at global pixel x, y) into `canvas` (whose corner is x0, y0).

    Works for (h, w) and (h, w, C) arrays; the part outside the canvas is dropped.
    """
    ch, cw = canvas.shape[:2]
    left, top = max(x - x0, 0), max(y - y0, 0)
    right = min(x - x0 + patch.shape[1], cw)
    bottom = min(y - y0 + patch.shape[0], ch)
    if right <= left or bottom <= top:
        return
    px, py = left - (x - x0), top - (y - y0)
    canvas[top:bottom, left:right] += patch[py:py + bottom - top, px:px + right - left]
