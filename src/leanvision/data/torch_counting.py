"""`CountingDataset`: a `CountingSet` as a torch Dataset of augmented samples with density targets.

The per-epoch RNG, the shared epoch and the skip-unreadable retry are those of every task's
dataset (`data.torch_dataset.SampleDataset`); this module adds the counting hooks.

The density target is drawn from the sample's points after augmentation and after fitting
to the input size, then sum-pooled to the model's output stride (`data.density`), so its
sum is exactly the number of heads in the sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from leanvision.core import DataError, DensitySpec, ResizeMode
from leanvision.data.augment.counting import CountCompose, fit_points
from leanvision.data.density import density_target
from leanvision.data.formats import CountingSet
from leanvision.data.torch_dataset import SampleDataset


def inside_image(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) bool: the point lies in [0, width] x [0, height] (edges included)."""
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    return (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (pts[:, 0] <= width) & (pts[:, 1] <= height)


class CountingDataset(SampleDataset):
    """Decoded, augmented counting samples of exactly `input_size`, with density targets.

    Items are `(image, target, index)`: image (3, H, W) uint8 RGB (not normalised: the
    trainer applies the card's mean/std); target `{"density": (1, ceil(H/stride),
    ceil(W/stride)) float32, "points": (M, 2) float32 x, y input pixels, "count": () float32}`;
    and the index of the image the sample came from. Points outside the decoded image are
    dropped (`leanvision data check` reports them).

    Args:
        dataset: the images and their head points; images without people are fine.
        augment: applied to each decoded image and its points, or None.
        input_size: (height, width) of every output image; samples are fitted to it with
            `resize` (padding right/bottom with `pad_value`), points moved alike.
        seed: with the epoch and index, fixes every random choice.
        density: how the target map is drawn.
        stride: the model's output stride (input pixels per density cell).
    """

    def __init__(
        self,
        dataset: CountingSet,
        *,
        augment: CountCompose | None,
        input_size: tuple[int, int],
        seed: int,
        density: DensitySpec | None = None,
        stride: int = 8,
        resize: ResizeMode = ResizeMode.LETTERBOX,
        pad_value: int = 0,
        scale: float | None = None,
    ) -> None:
        if not dataset.images:
            raise DataError("the counting set has no images", path=dataset.image_root)
        super().__init__(dataset, augment=augment, input_size=input_size, seed=seed, resize=resize,
                         pad_value=pad_value, scale=scale)
        self.density = density or DensitySpec()
        self.stride = int(stride)

    def _labels(self, record: Any, width: int, height: int) -> np.ndarray:
        points = np.asarray(record.points, np.float32).reshape(-1, 2)
        return points[inside_image(points, width, height)]

    def _fit(self, image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = self.input_size
        image, points = fit_points(image, labels, height, width, mode=self.resize, pad_value=self.pad_value,
                                   scale=self.scale)
        return image, points[inside_image(points, width, height)]

    def _target(self, labels: np.ndarray) -> dict[str, torch.Tensor]:
        height, width = self.input_size
        density = density_target(labels, height, width, spec=self.density, stride=self.stride)
        return {
            "density": torch.from_numpy(density)[None],
            "points": torch.from_numpy(labels.astype(np.float32, copy=True)).reshape(-1, 2),
            "count": torch.tensor(float(len(labels)), dtype=torch.float32),
        }
