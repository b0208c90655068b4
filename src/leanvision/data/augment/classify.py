"""Classification augmentations: image-level ops drawn from the sample's generator, and mixup / cutmix on batches.

Every image op is `op(image, rng) -> image` (HxWx3 uint8 RGB; `np.random.Generator` the only
source of randomness, so a sample is the same whatever the worker or a resume). The
library ops (torchvision's `AutoAugment` ImageNet policy, `RandomErasing`) draw from torch's
RNG: they run under `torch.random.fork_rng` seeded from the sample's generator.

| op                  | when          | what                                                       |
|---------------------|---------------|------------------------------------------------------------|
| random_resized_crop | before fitting| a crop of `scale` of the area, aspect jittered by `ratio` around the image's own |
| random_flip         | before fitting| mirror left-right with probability `horizontal`            |
| photometric_jitter  | before fitting| brightness, contrast, saturation, hue (`augment.photometric`) |
| autoaugment         | before fitting| torchvision AutoAugment, ImageNet policy                   |
| random_erasing      | after fitting | torchvision RandomErasing (timm's default p 0.25)          |
| cutout              | after fitting | one square of `size` x the input's side, filled grey        |
| mixup / cutmix      | on the batch  | `BatchMix`: soft targets for `compute_loss`                |

Ops marked "after fitting" see the model-input image (so erased areas are in input pixels),
the others the decoded image (so letterbox keeps the crop's aspect).
"""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from leanvision.core import Config, ConfigError, Detections
from leanvision.data.augment.geometric import crop_padded
from leanvision.data.augment.photometric import PhotometricJitter


def _probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


@contextlib.contextmanager
def _torch_seeded(rng: np.random.Generator) -> Iterator[None]:
    """torch's global RNG forked and seeded from `rng`: library ops stay a function of the sample."""
    import torch

    seed = int(rng.integers(0, 2**31 - 1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _to_tensor(image: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def _to_numpy(tensor: Any) -> np.ndarray:
    return np.ascontiguousarray(tensor.numpy().transpose(1, 2, 0))


@dataclass(frozen=True)
class RandomResizedCrop(Config):
    """Crop `scale` (area fraction, drawn uniformly) of the image with its aspect multiplied
    by a factor drawn log-uniformly from `ratio`, at a random place (Inception-style crop,
    relative to the image's own aspect so elongated products stay elongated), with probability p."""

    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (0.75, 1.333)
    p: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {list(self.scale)}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {list(self.ratio)}")
        _probability("p", self.p)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        draw, area, log_ratio = rng.random(), rng.uniform(*self.scale), rng.uniform(*np.log(self.ratio))
        if draw >= self.p:
            return image
        h, w = image.shape[:2]
        factor = math.exp(log_ratio)  # width/height change relative to the image's own aspect
        crop_w = min(w, max(1, round(w * math.sqrt(area * factor))))
        crop_h = min(h, max(1, round(h * math.sqrt(area / factor))))
        x0, y0 = int(rng.integers(0, w - crop_w + 1)), int(rng.integers(0, h - crop_h + 1))
        return np.ascontiguousarray(crop_padded(image, x0, y0, crop_w, crop_h, 0))


@dataclass(frozen=True)
class RandomFlip(Config):
    """Mirror left-right with probability `horizontal` (products are not mirror-symmetric in
    their text, but S1 trained with flips and tested with flip TTA)."""

    horizontal: float = 0.5

    def __post_init__(self) -> None:
        _probability("horizontal", self.horizontal)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.ascontiguousarray(image[:, ::-1]) if rng.random() < self.horizontal else image


@dataclass(frozen=True)
class AutoAugment(Config):
    """torchvision's AutoAugment with the ImageNet policy (Cubuk et al. 2019), with probability p."""

    p: float = 1.0

    def __post_init__(self) -> None:
        _probability("p", self.p)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return image
        from torchvision.transforms import v2

        with _torch_seeded(rng):
            return _to_numpy(v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)(_to_tensor(image)))


@dataclass(frozen=True)
class RandomErasing(Config):
    """torchvision's RandomErasing (Zhong et al. 2020) on the model-input image: a rectangle of
    `scale` of the area and aspect in `ratio`, filled with random noise (`value: random`) or a grey."""

    p: float = 0.25
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: str | int = "random"
    after_fit = True

    def __post_init__(self) -> None:
        _probability("p", self.p)
        if not (self.value == "random" or (isinstance(self.value, int) and 0 <= self.value <= 255)):
            raise ValueError(f"value must be 'random' or a grey level 0-255, got {self.value!r}")

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return image
        import torch
        from torchvision.transforms import v2

        with _torch_seeded(rng):
            if self.value == "random":  # noise in uint8: erase a float copy, then clip back
                tensor = _to_tensor(image).float()
                erase = v2.RandomErasing(p=1.0, scale=self.scale, ratio=self.ratio, value="random")
                out = erase(tensor / 255.0).mul(255.0).clamp(0, 255).round().to(torch.uint8)
            else:
                out = v2.RandomErasing(p=1.0, scale=self.scale, ratio=self.ratio, value=self.value)(_to_tensor(image))
        return _to_numpy(out)


@dataclass(frozen=True)
class Cutout(Config):
    """Cutout (DeVries & Taylor 2017): one square of side `size` x the input's shorter side,
    centred anywhere (clipped at the border), filled with grey `value`, with probability p."""

    size: float = 0.25
    p: float = 0.5
    value: int = 128
    after_fit = True

    def __post_init__(self) -> None:
        if not 0 < self.size <= 1:
            raise ValueError(f"size must be in (0, 1], got {self.size}")
        _probability("p", self.p)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        draw, cx, cy = rng.random(), rng.random(), rng.random()
        if draw >= self.p:
            return image
        h, w = image.shape[:2]
        side = max(1, round(self.size * min(h, w)))
        x0, y0 = round(cx * w) - side // 2, round(cy * h) - side // 2
        out = image.copy()
        out[max(0, y0):max(0, y0 + side), max(0, x0):max(0, x0 + side)] = self.value
        return out


@dataclass(frozen=True)
class _Photometric:
    op: PhotometricJitter

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.op(image, Detections.empty(), rng)[0]


# Recipe op name -> the Config dataclass of its parameters (mixup / cutmix: `BatchMix`).
CLASSIFY_OPS: dict[str, type[Config]] = {
    "random_resized_crop": RandomResizedCrop,
    "random_flip": RandomFlip,
    "photometric_jitter": PhotometricJitter,
    "autoaugment": AutoAugment,
    "random_erasing": RandomErasing,
    "cutout": Cutout,
}
BATCH_OPS = ("mixup", "cutmix")


@dataclass(frozen=True)
class BatchMix(Config):
    """Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on a batch, as timm's `Mixup`
    switches between them: with probability `p` a batch is mixed with its reverse, by CutMix
    with probability `switch` (when both are on), else by mixup; lambda ~ Beta(alpha, alpha).

    Written here rather than taken from timm or torchvision: both draw from global RNGs,
    and a batch must be a function of (seed, epoch, batch) to be reproducible across resumes.
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    p: float = 1.0
    switch: float = 0.5

    def __post_init__(self) -> None:
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            raise ValueError("mixup and cutmix alpha must be >= 0")
        _probability("p", self.p)
        _probability("switch", self.switch)

    @property
    def enabled(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, images: np.ndarray, labels: np.ndarray, num_classes: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, H, W, 3) images and (N,) labels -> mixed images, (N, C) float32 targets."""
        onehot = np.eye(num_classes, dtype=np.float32)[labels]
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or rng.random() < self.switch)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        if not self.enabled or rng.random() >= self.p or len(images) < 2:
            return images, onehot
        lam = float(rng.beta(alpha, alpha))
        other = images[::-1]
        if use_cutmix:
            h, w = images.shape[1:3]
            cut_h, cut_w = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
            cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
            y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h - cut_h // 2, h)
            x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w - cut_w // 2, w)
            mixed = images.copy()
            mixed[:, y0:y1, x0:x1] = other[:, y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
        else:
            mixed = np.clip(np.rint(images * lam + other * (1 - lam)), 0, 255).astype(np.uint8)
        return mixed, lam * onehot + (1 - lam) * onehot[::-1]


@dataclass(frozen=True)
class ClassifyAugmentation:
    """A recipe's steps split by when they run: `before` on the decoded image, `after` on the
    model-input image, `batch` on the collated batch."""

    before: tuple[Any, ...]
    after: tuple[Any, ...]
    batch: BatchMix

    def image(self, image: np.ndarray, rng: np.random.Generator, fit: Any) -> np.ndarray:
        """Decoded image -> augmented model-input image (`fit` places it in the input)."""
        for op in self.before:
            image = op(image, rng)
        image = fit(image)
        for op in self.after:
            image = op(image, rng)
        return image


def _known(name: str) -> str:
    names = [*CLASSIFY_OPS, *BATCH_OPS]
    close = difflib.get_close_matches(name, names, n=1)
    return f"(classification ops: {', '.join(names)})" + (f"; did you mean '{close[0]}'?" if close else "")


def build_classify_augmentation(steps: Sequence[Mapping[str, Any]]) -> ClassifyAugmentation:
    """The augmentation of a recipe's `augment.steps` list; ConfigError naming a bad step."""
    if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Sequence):
        raise ConfigError(f"augment: expected a list of steps, got {steps!r}")
    before, after, mix = [], [], {}
    for i, step in enumerate(steps):
        where = f"augment[{i}]"
        if not isinstance(step, Mapping):
            raise ConfigError(f"{where}: expected a mapping like {{op: random_flip, horizontal: 0.5}}, got {step!r}")
        name = step.get("op")
        params = {k: v for k, v in step.items() if k != "op"}
        if name in BATCH_OPS:
            unknown = set(params) - {"alpha", "p", "switch"}
            if unknown or name in mix:
                raise ConfigError(f"{where} ({name}): " + (f"unknown parameters {sorted(unknown)} (alpha, p, switch)"
                                                           if unknown else "given twice"))
            mix[name] = params
            continue
        if not isinstance(name, str) or name not in CLASSIFY_OPS:
            shown = f"unknown op '{name}'" if isinstance(name, str) else "missing 'op' (the augmentation's name)"
            raise ConfigError(f"{where}: {shown} {_known(name if isinstance(name, str) else '')}")
        config = CLASSIFY_OPS[name].from_dict(params, where=f"{where} ({name})")
        op = _Photometric(config) if isinstance(config, PhotometricJitter) else config
        (after if getattr(config, "after_fit", False) else before).append(op)
    shared = {**mix.get("mixup", {}), **mix.get("cutmix", {})}
    batch = BatchMix.from_dict({
        "mixup_alpha": mix.get("mixup", {}).get("alpha", 1.0 if "mixup" in mix else 0.0),
        "cutmix_alpha": mix.get("cutmix", {}).get("alpha", 1.0 if "cutmix" in mix else 0.0),
        **{k: shared[k] for k in ("p", "switch") if k in shared},
    }, where="augment (mixup / cutmix)")
    return ClassifyAugmentation(tuple(before), tuple(after), batch)
