"""`DetectionDataset`: a `DetectionSet` as a torch Dataset of augmented, fixed-size samples.

Determinism: sample `index` of epoch `e` is augmented with `sample_rng(seed, e, index)`,
so it is the same whatever the number of DataLoader workers, their order, or a resume.

Unreadable images: the sample is taken from the next readable image (index + 1, + 2, ...,
wrapping), so the substitute is deterministic too. A bad image is logged when first met
and flagged in a shared-memory tensor (`share_memory_()`): DataLoader workers, forked or
spawned, receive the dataset with that tensor by handle, not by copy, so `skipped` read
in the main process counts what every worker found. The epoch lives in shared memory for
the same reason: `set_epoch` reaches persistent workers.

Threads in workers: the DataLoader already gives each worker one torch thread. Do not call
`cv2.setNumThreads` in a forked worker: when the parent had used OpenCV's thread pool, it
hung here (pthread_cond_destroy on the pool state copied from the parent; OpenCV 5.0,
seen in this module's tests), while cv2 calls themselves run fine in forked workers.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from leanvision.core import DataError, Detections, ResizeMode
from leanvision.data.augment.common import read_rgb, sample_rng
from leanvision.data.augment.compose import Compose
from leanvision.data.augment.geometric import fit_to_size
from leanvision.data.formats import DetectionSet

logger = logging.getLogger(__name__)

Sample = tuple[torch.Tensor, dict[str, torch.Tensor], int]


class SampleDataset(Dataset, abc.ABC):
    """What every task's training dataset shares; a task's subclass supplies three hooks.

    Sample `index` of epoch `e` is augmented with `sample_rng(seed, e, index)`, the same
    whatever the workers, their order or a resume; the epoch lives in shared memory so
    `set_epoch` reaches persistent workers. An unreadable image is logged once, flagged in
    shared memory (so `skipped` counts what every worker met) and its sample is taken from
    the next readable image.

    Hooks: `_labels(record, width, height)` (the record's labels that lie in its decoded
    image), `_fit(image, labels)` (to `input_size`, labels moved alike) and `_target(labels)`
    (the tensors `compute_loss` takes).

    Args:
        dataset: a task's in-memory set (`images` records with `file_name`, `image_root`).
        augment: called as `augment(image, labels, rng) -> (image, labels)`, or None.
        input_size: (height, width) of every output image.
        seed: with the epoch and index, fixes every random choice.
        resize, pad_value, scale: how a sample is fitted to the input (the card's).
    """

    def __init__(self, dataset: Any, *, augment: Any, input_size: tuple[int, int], seed: int,
                 resize: ResizeMode = ResizeMode.LETTERBOX, pad_value: int = 0, scale: float | None = None) -> None:
        self.dataset = dataset
        self.augment = augment
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.seed = seed
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

    @abc.abstractmethod
    def _labels(self, record: Any, width: int, height: int) -> Any:
        """The record's labels that lie in its decoded `width` x `height` image."""

    @abc.abstractmethod
    def _fit(self, image: np.ndarray, labels: Any) -> tuple[np.ndarray, Any]:
        """The sample fitted to `input_size`, its labels moved alike."""

    @abc.abstractmethod
    def _target(self, labels: Any) -> dict[str, torch.Tensor]:
        """The tensors `compute_loss` takes for these labels."""

    def _decode(self, index: int) -> tuple[np.ndarray, Any, int]:
        """Image and labels of `index`, or of the next readable image after it."""
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
            return image, self._labels(record, image.shape[1], image.shape[0]), source
        raise DataError("none of the dataset's images can be read", path=self.dataset.image_root)

    def sample(self, index: int) -> tuple[np.ndarray, Any, int]:
        """The sample as numpy: (H, W, 3) uint8 RGB at the input size, its labels, the source index."""
        image, labels, source = self._decode(index)
        if self.augment is not None:
            image, labels = self.augment(image, labels, sample_rng(self.seed, self.epoch, index))
        image, labels = self._fit(image, labels)
        return image, labels, source

    def __getitem__(self, index: int) -> Sample:
        image, labels, source = self.sample(int(index))
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), self._target(labels), source


class DetectionDataset(SampleDataset):
    """Decoded, augmented detection samples of exactly `input_size`, for a DataLoader.

    Items are `(image, target, index)`: image (3, H, W) uint8 RGB (not normalised: the
    trainer applies the model card's mean/std), target `{"boxes": (M, 4) float32 xyxy
    input pixels, "labels": (M,) int64}` (M = 0 for a negative image), and the index of
    the image the sample was made from (another one if the requested image is unreadable).
    Boxes are clipped to the decoded image; boxes left without area are dropped.

    Args:
        dataset: the images and boxes; negatives (no boxes) are fine, but a set without a
            single box raises DataError.
        augment: applied to each decoded image, or None.
        input_size: (height, width) of every output image; samples the augmentation left
            at another size are fitted with `resize` (letterbox: aspect kept, padding
            right/bottom with `pad_value`).
        seed: with the epoch and index, fixes every random choice.
    """

    def __init__(
        self,
        dataset: DetectionSet,
        *,
        augment: Compose | None,
        input_size: tuple[int, int],
        seed: int,
        resize: ResizeMode = ResizeMode.LETTERBOX,
        pad_value: int = 0,
        scale: float | None = None,
    ) -> None:
        if not dataset.images:
            raise DataError("the dataset has no images", path=dataset.image_root)
        if dataset.num_objects == 0:
            raise DataError("the dataset has no boxes at all: nothing to learn to detect",
                            path=dataset.image_root)
        super().__init__(dataset, augment=augment, input_size=input_size, seed=seed, resize=resize,
                         pad_value=pad_value, scale=scale)

    def _labels(self, record: Any, width: int, height: int) -> Detections:
        # Crowd (COCO iscrowd) and difficult (VOC) boxes are not training targets, as in
        # torchvision's and Detectron2's COCO readers; evaluation ignores them instead.
        targets = record.targets[~(record.crowd | record.difficult)].clip(width, height)
        return targets[targets.areas > 0]

    def _fit(self, image: np.ndarray, labels: Detections) -> tuple[np.ndarray, Detections]:
        height, width = self.input_size
        return fit_to_size(image, labels, height, width, mode=self.resize, pad_value=self.pad_value,
                           scale=self._remaining_scale())

    def _remaining_scale(self) -> float | None:
        """The card's scale less what the augmentation applied: S0's OnlineCropResize 800 -> 400
        already brings a tile to the card's 0.5, and scaling it again would train at 0.25 while
        evaluation and deployment run at 0.5."""
        if self.scale is None or self.augment is None:
            return self.scale
        return self.scale / self.augment.scale

    def _target(self, labels: Detections) -> dict[str, torch.Tensor]:
        return {
            "boxes": torch.from_numpy(labels.boxes.astype(np.float32, copy=True)).reshape(-1, 4),
            "labels": torch.from_numpy(labels.labels.astype(np.int64, copy=True)),
        }


def collate(batch: Sequence[Sample]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]], torch.Tensor]:
    """DataLoader `collate_fn`: images stacked (N, 3, H, W) uint8, targets as a list,
    source indices as an (N,) int64 tensor."""
    images, targets, indices = zip(*batch, strict=True)
    return torch.stack(images), list(targets), torch.tensor(indices, dtype=torch.int64)

