"""`DensityMap`: a counting model's output for one image, and how density targets are made.

A density map holds, per cell, how many objects (heads) the cell contains: the image's
count is the sum of the map. Cells are `stride` image pixels wide and high (x, y strides
differ when an image was stretched to the model input), cell (i, j) covering image pixels
[j * sx, (j + 1) * sx) x [i * sy, (i + 1) * sy); the last row and column may reach past
the image.

`DensitySpec` says how ground-truth maps are drawn from head points (`data.density`): a
fixed Gaussian, or CSRNet's geometry-adaptive kernel (Zhang et al. 2016, MCNN; Li et al.
2018, CSRNet): sigma_i = beta x mean distance from head i to its k nearest heads.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from leanvision.core.config import Config
from leanvision.core.letterbox import FitTransform


class DensityKernel(enum.StrEnum):
    FIXED = "fixed"  # one sigma for every head (CSRNet on ShanghaiTech B: 15 px)
    ADAPTIVE = "adaptive"  # sigma = beta x mean distance to the k nearest heads (dense crowds)


@dataclass(frozen=True)
class DensitySpec(Config):
    """How a ground-truth density map is drawn from head points.

    Attributes:
        kernel: fixed or geometry-adaptive Gaussians.
        sigma: px; the fixed kernel's sigma, and the adaptive kernel's for a head with no
            neighbour (an image with one head).
        beta, k: adaptive kernel: sigma = beta x mean distance to the k nearest heads
            (CSRNet / MCNN: beta 0.3, k 3); fewer neighbours than k use those there are.
        min_sigma: px; floor of any sigma (two heads on one spot have distance 0).
        truncate: kernels are cut at this many sigmas (then renormalised, see `data.density`).
    """

    kernel: DensityKernel = DensityKernel.ADAPTIVE
    sigma: float = 4.0
    beta: float = 0.3
    k: int = 3
    min_sigma: float = 0.5
    truncate: float = 3.0

    def __post_init__(self) -> None:
        if not self.sigma > 0 or not self.min_sigma > 0 or not self.beta > 0:
            raise ValueError("sigma, min_sigma and beta must be positive")
        if self.k < 1:
            raise ValueError(f"k (nearest heads) must be at least 1, got {self.k}")
        if not self.truncate >= 1:
            raise ValueError(f"truncate must be at least 1 sigma, got {self.truncate}")


def _stride_pair(stride: float | tuple[float, float]) -> tuple[float, float]:
    pair = (stride, stride) if isinstance(stride, (int, float, np.floating, np.integer)) else tuple(stride)
    if len(pair) != 2 or not all(float(s) > 0 for s in pair):
        raise ValueError(f"stride must be a positive number or (x, y) pair, got {stride!r}")
    return float(pair[0]), float(pair[1])


@dataclass(frozen=True, eq=False)
class DensityMap:
    """Objects per cell of one image; `count` is the sum.

    Attributes:
        density: (H', W') float32, objects per cell.
        stride: (x, y) image pixels per cell (a number means the same along both axes).
    """

    density: np.ndarray
    stride: tuple[float, float]

    def __post_init__(self) -> None:
        density = np.asarray(self.density, dtype=np.float32)
        if density.ndim == 3 and density.shape[0] == 1:
            density = density[0]
        if density.ndim != 2:
            raise ValueError(f"a density map is (H, W) or (1, H, W), got shape {density.shape}")
        object.__setattr__(self, "density", density)
        object.__setattr__(self, "stride", _stride_pair(self.stride))

    @property
    def count(self) -> float:
        """Objects in the image: the sum of the map (accumulated in float64)."""
        return float(self.density.sum(dtype=np.float64))

    @property
    def shape(self) -> tuple[int, int]:
        """(H', W') cells."""
        return int(self.density.shape[0]), int(self.density.shape[1])

    def cells_covering(self, width: float, height: float) -> tuple[int, int]:
        """(rows, cols) of the cells that cover image pixels [0, width) x [0, height)."""
        sx, sy = self.stride
        return min(self.shape[0], math.ceil(height / sy - 1e-9)), min(self.shape[1], math.ceil(width / sx - 1e-9))

    def crop(self, width: float, height: float) -> DensityMap:
        """Only the cells covering [0, width) x [0, height) image pixels (e.g. not the padding)."""
        rows, cols = self.cells_covering(width, height)
        return DensityMap(self.density[:rows, :cols], self.stride)

    def rescale(self, factor_x: float, factor_y: float | None = None) -> DensityMap:
        """The same cells in other pixels: strides multiplied by (factor_x, factor_y)."""
        factor_y = factor_x if factor_y is None else factor_y
        return DensityMap(self.density, (self.stride[0] * factor_x, self.stride[1] * factor_y))

    @classmethod
    def from_model_output(cls, density: np.ndarray, transform: FitTransform, output_stride: int) -> DensityMap:
        """A model's (H', W') output for an image placed in its input by `transform`, in the
        image's pixels: cells over the padding (letterbox, scale) are dropped, strides are
        `output_stride` input pixels divided by the image-to-input scale of each axis.
        ValueError for a centre-cropped input: a map has no origin to carry the crop."""
        if transform.cropped:
            raise ValueError("a density map cannot be mapped back from a centre-cropped input")
        resized_h, resized_w = transform.resized_hw
        in_input = cls(density, output_stride).crop(resized_w, resized_h)
        return in_input.rescale(1.0 / transform.scale_x, 1.0 / transform.scale_y)

    def __repr__(self) -> str:
        return f"DensityMap(count={self.count:.2f}, shape={self.shape}, stride=({self.stride[0]:g}, {self.stride[1]:g}))"
