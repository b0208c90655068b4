"""`CountingDataset`: a `CountingSet` as a torch Dataset of augmented samples with density targets.

Same contract as `data.torch_dataset.DetectionDataset`: sample `index` of epoch `e` is
augmented with `sample_rng(seed, e, index)` (the same whatever the workers, their order or
a resume); an unreadable image is logged once, flagged in shared memory, and its sample is
taken from the next readable image; the epoch lives in shared memory so `set_epoch`
reaches persistent workers.

The density target is drawn from the sample's points after augmentation and after fitting
to the input size, then sum-pooled to the model's output stride (`data.density`), so its
sum is exactly the number of heads in the sample.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import Dataset

from leanvision.core import DataError, DensitySpec, ResizeMode
from leanvision.data.augment.common import read_rgb, sample_rng
from leanvision.data.augment.counting import CountCompose, fit_points
from leanvision.data.density import density_target
from leanvision.data.formats import CountingSet

logger = logging.getLogger(__name__)

Sample = tuple[torch.Tensor, dict[str, torch.Tensor], int]


def inside_image(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) bool: the point lies in [0, width] x [0, height] (edges included)."""
    pts = np.asarray(points, np.float32).reshape(-1, 2)
    return (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (pts[:, 0] <= width) & (pts[:, 1] <= height)


class CountingDataset(Dataset):
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
        self.dataset = dataset
        self.augment = augment
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.seed = seed
        self.density = density or DensitySpec()
        self.stride = int(stride)
        self.resize = ResizeMode(resize)
        self.pad_value = pad_value
        self.scale = scale
        self._bad = torch.zeros(len(dataset.images), dtype=torch.uint8).share_memory_()
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.dataset.images)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations the next samples get."""
        self._epoch[0] = epoch

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    @property
    def skipped(self) -> int:
        """Number of distinct unreadable images met so far, by any worker."""
        return int(self._bad.sum())

    @property
    def skipped_files(self) -> list[str]:
        return [self.dataset.images[i].file_name for i in torch.nonzero(self._bad).flatten().tolist()]

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Image and points of `index`, or of the next readable image after it."""
        n = len(self)
        for step in range(n):
            source = (index + step) % n
            if self._bad[source]:
                continue
            record = self.dataset.images[source]
            try:
                image = read_rgb(self.dataset.image_root / record.file_name)
            except DataError as exc:
                self._bad[source] = 1
                logger.warning("skipping unreadable image (%s); its samples come from the next one", exc)
                continue
            h, w = image.shape[:2]
            points = np.asarray(record.points, np.float32).reshape(-1, 2)
            return image, points[inside_image(points, w, h)], source
        raise DataError("none of the dataset's images can be read", path=self.dataset.image_root)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The sample as numpy: (H, W, 3) uint8 RGB at the input size, its points, the source index."""
        image, points, source = self._decode(index)
        if self.augment is not None:
            image, points = self.augment(image, points, sample_rng(self.seed, self.epoch, index))
        height, width = self.input_size
        image, points = fit_points(image, points, height, width, mode=self.resize, pad_value=self.pad_value,
                                   scale=self.scale)
        return image, points[inside_image(points, width, height)], source

    def __getitem__(self, index: int) -> Sample:
        image, points, source = self.sample(int(index))
        height, width = self.input_size
        density = density_target(points, height, width, spec=self.density, stride=self.stride)
        target = {
            "density": torch.from_numpy(density)[None],
            "points": torch.from_numpy(points.astype(np.float32, copy=True)).reshape(-1, 2),
            "count": torch.tensor(float(len(points)), dtype=torch.float32),
        }
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return tensor, target, source
