"""Classification training data: `ClassificationDataset`, long-tail samplers and the mixing collate.

Samples are placed in the model input exactly as deployment places images
(`runtime.preprocess.place_image`: the card's letterbox / stretch / centre crop), after the
augmentations that see the decoded image and before those that see the input.

Samplers (a recipe's `data.sampler`), each a fresh draw per epoch from (seed, epoch) alone:

| sampler        | an image of class c is drawn with probability        | use                         |
|----------------|------------------------------------------------------|-----------------------------|
| uniform        | each image once per epoch (a permutation)            | the default                 |
| class_balanced | 1 / (C n_c): every class equally often               | long tails (Kang et al. 2020) |
| sqrt           | sqrt(n_c) / (n_c sum_k sqrt(n_k)): between the two   | long tails, less overfitting of the tail |

The weighted samplers draw `len(dataset)` images with replacement per epoch, as torch's
`WeightedRandomSampler` does; written here because that sampler draws from torch's global
RNG, and data order must be a function of (seed, epoch) to survive a resume.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from leanvision.core import DataError, InputSpec
from leanvision.core.enums import SamplerKind
from leanvision.data.augment.classify import BatchMix, ClassifyAugmentation
from leanvision.data.augment.common import sample_rng
from leanvision.data.formats import ClassificationSet
from leanvision.data.torch_dataset import Sample, SampleDataset


@dataclass(frozen=True)
class LabelledImage:
    """One image of a classification set, as `SampleDataset` reads records."""

    file_name: str
    label: int


@dataclass(frozen=True)
class _Records:
    images: list[LabelledImage]
    image_root: Any


def sampling_weights(labels: Sequence[int], kind: SamplerKind | str) -> np.ndarray:
    """Per image, its probability of being drawn (sums to 1) under the sampler `kind`."""
    labels = np.asarray(labels, np.int64)
    counts = np.bincount(labels)
    kind = SamplerKind(kind)
    if kind is SamplerKind.UNIFORM:
        class_mass = counts.astype(np.float64)
    elif kind is SamplerKind.CLASS_BALANCED:
        class_mass = (counts > 0).astype(np.float64)
    else:
        class_mass = np.sqrt(counts)
    per_image = class_mass[labels] / counts[labels]
    return per_image / per_image.sum()


class ClassSampler(Sampler[int]):
    """Indices for one epoch: a permutation (uniform) or `len(labels)` weighted draws with
    replacement (class_balanced, sqrt), from (seed, epoch) alone."""

    def __init__(self, labels: Sequence[int], kind: SamplerKind | str, *, seed: int) -> None:
        self.kind = SamplerKind(kind)
        self.size, self.seed, self.epoch = len(labels), seed, 0
        self.weights = sampling_weights(labels, self.kind)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch, 0x5A3])
        if self.kind is SamplerKind.UNIFORM:
            return iter(rng.permutation(self.size).tolist())
        return iter(rng.choice(self.size, size=self.size, replace=True, p=self.weights).tolist())


class ClassificationDataset(SampleDataset):
    """Decoded, augmented images at the card's input, with their labels.

    Items are `(image, target, index)`: image (3, H, W) uint8 RGB (the trainer normalises),
    target `{"label": () int64}`, and the index of the image the sample came from (the next
    readable one when an image cannot be decoded; counted in `skipped`).

    Args:
        dataset: the images and their labels.
        augment: the recipe's augmentation, or None.
        spec: the card's input (size, resize mode, padding grey).
        seed: with the epoch and index, fixes every random choice.
    """

    def __init__(self, dataset: ClassificationSet, *, augment: ClassifyAugmentation | None, spec: InputSpec,
                 seed: int) -> None:
        if not dataset.items:
            raise DataError("the classification set has no images", path=dataset.image_root)
        records = _Records([LabelledImage(name, label) for name, label in dataset.items], dataset.image_root)
        super().__init__(records, augment=augment, input_size=(spec.height, spec.width), seed=seed,
                         resize=spec.resize, pad_value=spec.pad_value)
        self.spec = spec
        self.labels = [label for _, label in dataset.items]

    def _labels(self, record: Any, width: int, height: int) -> int:
        return int(record.label)

    def _fit(self, image: np.ndarray, labels: int) -> tuple[np.ndarray, int]:
        return self._place(image), labels

    def _place(self, image: np.ndarray) -> np.ndarray:
        from leanvision.runtime.preprocess import place_image

        return place_image(image, self.spec)

    def _target(self, labels: int) -> dict[str, torch.Tensor]:
        return {"label": torch.tensor(labels, dtype=torch.int64)}

    def sample(self, index: int) -> tuple[np.ndarray, int, int]:
        image, label, source = self._decode(index)
        if self.augment is None:
            return self._place(image), label, source
        return self.augment.image(image, sample_rng(self.seed, self.epoch, index), self._place), label, source


class MixCollate:
    """`collate_fn` that mixes each batch (`BatchMix`: mixup / cutmix) into soft targets;
    the draw is a function of (seed, epoch, the batch's indices)."""

    def __init__(self, mix: BatchMix, num_classes: int, *, seed: int, dataset: ClassificationDataset) -> None:
        self.mix, self.num_classes, self.seed, self.dataset = mix, num_classes, seed, dataset

    def __call__(self, batch: Sequence[Sample]) -> tuple[torch.Tensor, list[dict[str, Any]], torch.Tensor]:
        images, targets, indices = zip(*batch, strict=True)
        stacked = torch.stack(images).permute(0, 2, 3, 1).numpy()
        labels = np.array([int(t["label"]) for t in targets])
        rng = np.random.default_rng([self.seed, self.dataset.epoch, 0xB17, *indices])
        mixed, soft = self.mix(stacked, labels, self.num_classes, rng)
        out = torch.from_numpy(np.ascontiguousarray(mixed.transpose(0, 3, 1, 2)))
        soft_targets = [{"label": t["label"], "soft": torch.from_numpy(s)} for t, s in zip(targets, soft, strict=True)]
        return out, soft_targets, torch.tensor(indices, dtype=torch.int64)
