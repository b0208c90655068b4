"""Point-aware augmentations for counting that keep the count exact (numpy + cv2, no torch).

Every op is `op(image, points, rng) -> (image, points)` with an HxWx3 uint8 RGB image,
(N, 2) float32 head points x, y in its pixels and a `np.random.Generator` as the only
source of randomness. Points are moved with the pixels; the density map is drawn from the
points *after* augmentation (`data.density`), so the target's sum is always the number of
heads in the sample: a crop keeps the heads inside it, a flip or a scale keeps them all.

| op                 | what                                                           |
|--------------------|----------------------------------------------------------------|
| random_crop        | a `height` x `width` window (padded where the image is smaller)|
| random_scale       | resize by a factor drawn log-uniformly from [min, max]        |
| random_flip        | mirror left-right (`horizontal`) and/or top-bottom (`vertical`)|
| photometric_jitter | brightness, contrast, saturation, hue (`augment.photometric`)  |

`build_count_augmentation(recipe["augment"]["steps"])` builds a `CountCompose` from a
recipe's list, checking every op and parameter as the detection builder does.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from leanvision.core import Config, ConfigError, Detections, ResizeMode
from leanvision.core.letterbox import fit
from leanvision.data.augment.geometric import _resize, crop_padded, fit_to_size
from leanvision.data.augment.photometric import PhotometricJitter


class CountAugmentation(Protocol):
    def __call__(
        self, image: np.ndarray, points: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]: ...


def _points(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float32).reshape(-1, 2)


def crop_points(image: np.ndarray, points: np.ndarray, x0: int, y0: int, width: int, height: int,
                *, fill: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The window [x0, x0 + width) x [y0, y0 + height) (outside the image: `fill`) and the
    points inside it, shifted to its pixels."""
    pts = _points(points)
    inside = (pts[:, 0] >= x0) & (pts[:, 0] < x0 + width) & (pts[:, 1] >= y0) & (pts[:, 1] < y0 + height)
    patch = np.ascontiguousarray(crop_padded(image, x0, y0, width, height, fill))
    return patch, pts[inside] - np.array([x0, y0], np.float32)


def scale_points(image: np.ndarray, points: np.ndarray, new_width: int, new_height: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize to `new_width` x `new_height`; points scale by the exact per-axis ratios, so a
    point inside the image stays inside it."""
    h, w = image.shape[:2]
    factor = np.array([new_width / w, new_height / h], np.float32)
    return np.ascontiguousarray(_resize(image, new_width, new_height)), _points(points) * factor


def flip_points(image: np.ndarray, points: np.ndarray, *, horizontal: bool, vertical: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right (x -> width - x) and/or top-bottom (y -> height - y)."""
    import cv2

    if not (horizontal or vertical):
        return image, _points(points)
    h, w = image.shape[:2]
    pts = _points(points).copy()
    if horizontal:
        pts[:, 0] = w - pts[:, 0]
    if vertical:
        pts[:, 1] = h - pts[:, 1]
    code = -1 if horizontal and vertical else (1 if horizontal else 0)
    return cv2.flip(image, code), pts


def fit_points(image: np.ndarray, points: np.ndarray, height: int, width: int, *,
               mode: ResizeMode = ResizeMode.LETTERBOX, pad_value: int = 0,
               scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit to exactly `height` x `width` as `augment.fit_to_size` does (the way a model
    card places an image in its input); points scale by the same per-axis factors."""
    fitted, _ = fit_to_size(image, Detections.empty(), height, width, mode=mode, pad_value=pad_value, scale=scale)
    if fitted is image:
        return image, _points(points)
    transform = fit(image.shape[:2], (height, width), ResizeMode(mode), scale)
    return fitted, _points(points) * np.array([transform.scale_x, transform.scale_y], np.float32)


def _probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


@dataclass(frozen=True)
class RandomCrop(Config):
    """A `height` x `width` window at a random place; the heads inside it are the sample's.

    Windows stay inside an image at least that large; a smaller image lies inside the
    window at a random offset and the rest is `fill` (CSRNet trains on crops of the image).
    """

    height: int
    width: int
    fill: int = 0

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"crop height and width must be positive, got {self.height}x{self.width}")
        if not 0 <= self.fill <= 255:
            raise ValueError(f"fill must be a grey level in [0, 255], got {self.fill}")

    def __call__(self, image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        x0 = int(rng.integers(min(0, w - self.width), max(0, w - self.width) + 1))
        y0 = int(rng.integers(min(0, h - self.height), max(0, h - self.height) + 1))
        return crop_points(image, points, x0, y0, self.width, self.height, fill=self.fill)


@dataclass(frozen=True)
class RandomScale(Config):
    """Resize by a factor drawn log-uniformly from [min_scale, max_scale], with probability `p`.

    Heads change apparent size as they do between near and far crowds, or between images
    of different resolutions fitted to one model input (S3: images up to 2048 px).
    """

    min_scale: float = 0.7
    max_scale: float = 1.3
    p: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= self.max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {self.min_scale} and {self.max_scale}")
        _probability("p", self.p)

    def __call__(self, image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        draw, factor = rng.random(), math.exp(rng.uniform(math.log(self.min_scale), math.log(self.max_scale)))
        if draw >= self.p:
            return image, _points(points)
        h, w = image.shape[:2]
        return scale_points(image, points, max(1, round(w * factor)), max(1, round(h * factor)))


@dataclass(frozen=True)
class RandomFlip(Config):
    """Mirror left-right with probability `horizontal`, top-bottom with `vertical`.

    Top-bottom is off by default: crowds seen from above have a horizon and perspective.
    """

    horizontal: float = 0.5
    vertical: float = 0.0

    def __post_init__(self) -> None:
        _probability("horizontal", self.horizontal)
        _probability("vertical", self.vertical)

    def __call__(self, image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        draws = rng.random(2)
        return flip_points(image, points, horizontal=bool(draws[0] < self.horizontal),
                           vertical=bool(draws[1] < self.vertical))


@dataclass(frozen=True)
class _ImageOnly:
    """A detection photometric op used on the image alone (points are untouched)."""

    op: PhotometricJitter

    def __call__(self, image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return self.op(image, Detections.empty(), rng)[0], _points(points)


# Recipe op name -> the Config dataclass of its parameters.
COUNT_OPS: dict[str, type[Config]] = {
    "random_crop": RandomCrop,
    "random_scale": RandomScale,
    "random_flip": RandomFlip,
    "photometric_jitter": PhotometricJitter,
}


class CountCompose:
    """Apply counting augmentations in order, all drawing from the one generator given."""

    def __init__(self, ops: Sequence[CountAugmentation]) -> None:
        self.ops = tuple(ops)

    def __call__(self, image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        points = _points(points)
        for op in self.ops:
            image, points = op(image, points, rng)
        return image, points

    def __len__(self) -> int:
        return len(self.ops)

    @property
    def output_size(self) -> tuple[int, int] | None:
        """(height, width) every output has (the last `random_crop` with no rescaling after
        it), or None when the size varies."""
        size = None
        for op in self.ops:
            if isinstance(op, RandomCrop):
                size = (op.height, op.width)
            elif isinstance(op, RandomScale):
                size = None
        return size

    def __iter__(self) -> Iterator[CountAugmentation]:
        return iter(self.ops)

    def __repr__(self) -> str:
        return f"CountCompose({list(self.ops)!r})"


def _known(name: str) -> str:
    close = difflib.get_close_matches(name, list(COUNT_OPS), n=1)
    return f"(counting ops: {', '.join(COUNT_OPS)})" + (f"; did you mean '{close[0]}'?" if close else "")


def build_count_step(step: Mapping[str, Any], *, where: str = "augment") -> CountAugmentation:
    """One counting augmentation from a recipe step `{op: name, param: value, ...}`."""
    if not isinstance(step, Mapping):
        raise ConfigError(f"{where}: expected a mapping like {{op: random_crop, height: 256, width: 256}}, got {step!r}")
    name = step.get("op")
    if not isinstance(name, str) or name not in COUNT_OPS:
        shown = f"unknown op '{name}'" if isinstance(name, str) else "missing 'op' (the augmentation's name)"
        raise ConfigError(f"{where}: {shown} {_known(name if isinstance(name, str) else '')}")
    config = COUNT_OPS[name].from_dict({k: v for k, v in step.items() if k != "op"}, where=f"{where} ({name})")
    return _ImageOnly(config) if isinstance(config, PhotometricJitter) else config  # type: ignore[return-value]


def build_count_augmentation(steps: Sequence[Mapping[str, Any]]) -> CountCompose:
    """A `CountCompose` from a recipe's `augment.steps` list (names: the keys of `COUNT_OPS`)."""
    if isinstance(steps, (str, bytes, Mapping)) or not isinstance(steps, Sequence):
        raise ConfigError(f"augment: expected a list of steps, got {steps!r}")
    return CountCompose([build_count_step(step, where=f"augment[{i}]") for i, step in enumerate(steps)])
