"""Ground-truth density maps from head points, and count-preserving downsampling.

Each head adds one Gaussian that sums to 1 *inside the image*: the kernel is evaluated at
the pixel centres around the point (sub-pixel accurate), cut at `truncate` sigmas and by
the image border, and renormalised over what is left. A head near the border therefore
keeps all its mass in the image and the map sums to the number of heads (scipy's
`gaussian_filter` with a constant border, used by CSRNet's scripts, loses up to half of it).
The Gaussian is separable: the 2-D kernel is the outer product of two 1-D kernels each
normalised to 1, so it sums to 1 too.

`sum_pool` brings a full-resolution map to a model's output stride by adding the values of
each stride x stride block: the count is unchanged. (CSRNet's scripts resize the map with
bicubic interpolation and multiply by 64, which changes the count and can go negative.)

Written by hand: no kept library renormalises per-point kernels at the border, and the
per-point loop is ~15 us a head (2000 heads at 576 x 768: ~30 ms).
"""

from __future__ import annotations

import math

import numpy as np

from leanvision.core.density import DensityKernel, DensitySpec


def _check_points(points: np.ndarray, height: int, width: int) -> np.ndarray:
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) and (pts.min() < 0 or pts[:, 0].max() > width or pts[:, 1].max() > height):
        raise ValueError(f"points must lie in the {width}x{height} image (0 <= x <= width, 0 <= y <= height)")
    return pts


def adaptive_sigmas(points: np.ndarray, spec: DensitySpec) -> np.ndarray:
    """(N,) sigma per head: beta x mean distance to its k nearest heads (scipy KDTree).

    A lone head gets `spec.sigma`; every sigma is at least `spec.min_sigma`.
    """
    from scipy.spatial import KDTree

    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) < 2:
        return np.full(len(pts), spec.sigma, np.float64)
    k = min(spec.k, len(pts) - 1)
    distances, _ = KDTree(pts).query(pts, k=k + 1)  # the nearest is the head itself
    return np.maximum(spec.beta * distances[:, 1:].mean(axis=1), spec.min_sigma)


def _kernel_1d(centre: float, sigma: float, length: int, truncate: float) -> tuple[int, np.ndarray]:
    """(first pixel, weights) of a Gaussian at `centre` over pixels [0, length), summing to 1."""
    pixel = min(math.floor(centre), length - 1)
    radius = max(1, math.ceil(truncate * sigma))
    lo, hi = max(0, pixel - radius), min(length, pixel + radius + 1)
    offsets = (np.arange(lo, hi, dtype=np.float64) + 0.5 - centre) / sigma
    weights = np.exp(-0.5 * offsets * offsets)
    return lo, weights / weights.sum()


def density_map(points: np.ndarray, height: int, width: int, spec: DensitySpec | None = None) -> np.ndarray:
    """The (height, width) float32 density map of `points`; it sums to len(points).

    Args:
        points: (N, 2) x, y in pixels, inside [0, width] x [0, height] (a point on the far
            edge, as a flip of x = 0 gives, belongs to the last pixel).
        height, width: image size in pixels.
        spec: kernel (default: adaptive, beta 0.3, k 3).

    Raises:
        ValueError: a point lies outside the image.
    """
    spec = spec or DensitySpec()
    pts = _check_points(points, height, width)
    out = np.zeros((height, width), np.float64)
    if spec.kernel is DensityKernel.ADAPTIVE:
        sigmas = adaptive_sigmas(pts, spec)
    else:
        sigmas = np.full(len(pts), max(spec.sigma, spec.min_sigma))
    for (x, y), sigma in zip(pts, sigmas, strict=True):
        x0, wx = _kernel_1d(x, sigma, width, spec.truncate)
        y0, wy = _kernel_1d(y, sigma, height, spec.truncate)
        out[y0:y0 + len(wy), x0:x0 + len(wx)] += np.outer(wy, wx)
    return out.astype(np.float32)


def sum_pool(density: np.ndarray, stride: int) -> np.ndarray:
    """(ceil(H / stride), ceil(W / stride)) float32: each cell the sum of its stride x stride
    block of the (H, W) map (the last row and column sum what lies inside the image)."""
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    height, width = density.shape
    rows, cols = -(-height // stride), -(-width // stride)
    padded = np.zeros((rows * stride, cols * stride), np.float64)
    padded[:height, :width] = density
    return padded.reshape(rows, stride, cols, stride).sum(axis=(1, 3)).astype(np.float32)


def density_target(points: np.ndarray, height: int, width: int, *, spec: DensitySpec | None = None,
                   stride: int = 8) -> np.ndarray:
    """The training target of a counting model with output stride `stride`: the density map
    of `points` in a (height, width) image, sum-pooled to (ceil(H / stride), ceil(W / stride))."""
    return sum_pool(density_map(points, height, width, spec), stride)
