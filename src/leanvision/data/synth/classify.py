"""S1 retail products: fine-grained, long-tailed classes of elongated packages, with the
traps of a real shelf set.

- Fine-grained: classes come in brands of four products that share the package (shape,
  body colour, pattern) and differ in the label band, the logo glyph and the proportions.
  On top of that 40 % of the classes come in near-duplicate pairs that differ only in the
  logo's colour or glyph, as product variants do.
- Long tail: class frequencies follow Zipf's law (head 60 training images, tail 3 by
  default), ranks shuffled so that a pair's two classes have different frequencies.
- Elongated crops around one package, with the shelf neighbours cut in at the sides, tilt,
  lighting, blur and sensor noise.
- Label noise: 3 % of the training images are filed under a wrong class (half of them under
  the class's near-duplicate twin or a brand sibling, where real mislabels go). Validation is
  clean. `synth.json` counts the noisy labels.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from leanvision.data.synth.common import (
    Progress,
    report,
    rng_for,
    split_summary,
    val_count,
    write_jpeg,
)
from leanvision.data.synth.textures import value_noise

NUM_CLASSES = 200
MIN_CLASSES = 2
HEAD_IMAGES = 60  # training images of the most frequent class by default
TAIL_IMAGES = 3  # ... and of the least frequent
PAIR_SHARE = 0.4  # share of classes that have a near-duplicate twin (counted per class)
BRAND_SIZE = 4  # products per brand (same package, other label)
LABEL_NOISE = 0.03  # share of training images filed under a wrong class
_GLYPHS = "ABCDEFGHKMNPRSTUXZ"


class Shape(enum.IntEnum):
    BOTTLE = 0
    BOX = 1
    CAN = 2
    TUBE = 3
    POUCH = 4  # the wide one


class Pattern(enum.IntEnum):
    PLAIN = 0
    STRIPES = 1
    DOTS = 2
    CHECKS = 3


@dataclass(frozen=True)
class Design:
    """One product class.

    Attributes:
        shape: package shape.
        aspect: package height / width (> 1 tall, < 1 wide).
        body, accent, band, logo: RGB colours (0-255) of the package, pattern, label, logo.
        pattern: decoration of the body; `period` its spacing in units of the width.
        band: label band as (centre, height), fractions of the package height.
        glyph: the logo's letter.
    """

    shape: Shape
    aspect: float
    body: tuple[float, float, float]
    accent: tuple[float, float, float]
    pattern: Pattern
    period: float
    band_color: tuple[float, float, float]
    band: tuple[float, float]
    glyph: str
    logo: tuple[float, float, float]


def _rgb(rng: np.random.Generator) -> tuple[float, float, float]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(60, 256)]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return float(r), float(g), float(b)


def _aspect(rng: np.random.Generator, shape: Shape) -> float:
    low, high = {Shape.BOTTLE: (2.2, 4.0), Shape.BOX: (1.5, 2.6), Shape.CAN: (1.5, 2.2),
                 Shape.TUBE: (2.5, 4.0), Shape.POUCH: (1 / 3, 1 / 1.5)}[shape]
    return float(rng.uniform(low, high))


def random_design(rng: np.random.Generator) -> Design:
    shape = Shape(int(rng.choice(len(Shape), p=[0.3, 0.25, 0.15, 0.15, 0.15])))
    return Design(
        shape=shape, aspect=_aspect(rng, shape), body=_rgb(rng), accent=_rgb(rng),
        pattern=Pattern(int(rng.integers(len(Pattern)))), period=float(rng.uniform(0.15, 0.4)),
        band_color=_rgb(rng), band=(float(rng.uniform(0.4, 0.65)), float(rng.uniform(0.2, 0.35))),
        glyph=str(rng.choice(list(_GLYPHS))), logo=_rgb(rng),
    )


def near_duplicate(rng: np.random.Generator, design: Design) -> Design:
    """The same package with another logo colour or another glyph."""
    if rng.random() < 0.5:
        return dataclasses.replace(design, logo=_rgb(rng))
    others = [g for g in _GLYPHS if g != design.glyph]
    return dataclasses.replace(design, glyph=str(rng.choice(others)))


def brand_sibling(rng: np.random.Generator, design: Design) -> Design:
    """Another product of the same brand: same package and pattern, another label and proportions."""
    return dataclasses.replace(
        design, aspect=_aspect(rng, design.shape), band_color=_rgb(rng),
        band=(float(rng.uniform(0.4, 0.65)), float(rng.uniform(0.2, 0.35))),
        glyph=str(rng.choice(list(_GLYPHS))), logo=_rgb(rng))


def class_designs(seed: int, num_classes: int = NUM_CLASSES) -> list[Design]:
    """The classes, in brands of `BRAND_SIZE` consecutive indices; the first
    `PAIR_SHARE` of them are near-duplicate pairs (2k, 2k + 1)."""
    rng = rng_for(seed, "classify", "classes", 0)
    pairs = round(num_classes * PAIR_SHARE / 2)
    designs: list[Design] = []
    for index in range(num_classes):
        if index < 2 * pairs and index % 2 == 1:
            designs.append(near_duplicate(rng, designs[-1]))
        elif index % BRAND_SIZE == 0:
            designs.append(random_design(rng))
        else:
            designs.append(brand_sibling(rng, designs[index - index % BRAND_SIZE]))
    return designs


def relatives(label: int, num_classes: int) -> list[int]:
    """The classes that look most like `label`: its brand siblings (its twin among them)."""
    first = label - label % BRAND_SIZE
    return [c for c in range(first, min(first + BRAND_SIZE, num_classes)) if c != label]


def noisy_label(seed: int, label: int, index: int, num_classes: int) -> int:
    """The class training image `index` of class `label` is filed under: `label` itself, or
    with probability `LABEL_NOISE` another one (half the time a relative). Image 0 of a class
    is always filed right, so that no class is left without a correct example."""
    rng = rng_for(seed, "classify", "classes", 2, label, index)
    if index == 0 or num_classes < 2 or rng.random() >= LABEL_NOISE:
        return label
    near = relatives(label, num_classes)
    if near and rng.random() < 0.5:
        return int(rng.choice(near))
    return int((label + rng.integers(1, num_classes)) % num_classes)


def class_counts(seed: int, total: int | None, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(num_classes,) training images per class: Zipf over shuffled ranks.

    Args:
        total: training images in all; None for the default long tail (head 100, tail 3).
    """
    rank = rng_for(seed, "classify", "classes", 1).permutation(num_classes) + 1
    alpha = np.log(HEAD_IMAGES / TAIL_IMAGES) / np.log(num_classes)
    shape = rank.astype(np.float64) ** -alpha
    if total is None:
        return np.maximum(TAIL_IMAGES, np.round(HEAD_IMAGES * shape)).astype(np.int64)
    low, high = 0.0, float(total)
    for _ in range(60):  # bisect the head size so that the counts sum to about `total`
        head = (low + high) / 2
        low, high = (head, high) if np.maximum(1, np.round(head * shape)).sum() < total else (low, head)
    return np.maximum(1, np.round(high * shape)).astype(np.int64)


def _body_mask(design: Design, w: int, h: int) -> np.ndarray:
    """(h, w) uint8 mask of the package outline in its own w x h frame."""
    mask = np.zeros((h, w), np.uint8)
    if design.shape is Shape.BOTTLE:
        neck = max(2, w // 5)
        cv2.rectangle(mask, (w // 2 - neck, 0), (w // 2 + neck, h // 5), 255, -1)
        cv2.ellipse(mask, (w // 2, h // 3), (w // 2 - 1, h // 7), 0, 180, 360, 255, -1)
        cv2.rectangle(mask, (0, h // 3), (w - 1, h - 1), 255, -1)
    elif design.shape is Shape.CAN:
        cv2.rectangle(mask, (0, h // 16), (w - 1, h - h // 16), 255, -1)
        for y in (h // 16, h - h // 16):
            cv2.ellipse(mask, (w // 2, y), (w // 2 - 1, max(1, h // 16)), 0, 0, 360, 255, -1)
    elif design.shape is Shape.TUBE:
        cv2.fillConvexPoly(mask, np.int32([[0, 0], [w - 1, 0], [w * 3 // 4, h - 1], [w // 4, h - 1]]), 255)
    else:
        cv2.rectangle(mask, (0, 0), (w - 1, h - 1), 255, -1)
    return mask


def _pattern(design: Design, w: int, h: int) -> np.ndarray:
    """(h, w) bool: where the accent colour shows."""
    period = max(3, int(design.period * w))
    yy, xx = np.mgrid[0:h, 0:w]
    if design.pattern is Pattern.STRIPES:
        return ((xx + yy) // period) % 2 == 0
    if design.pattern is Pattern.DOTS:
        return (xx % period - period / 2) ** 2 + (yy % period - period / 2) ** 2 < (period / 4) ** 2
    if design.pattern is Pattern.CHECKS:
        return (xx // period + yy // period) % 2 == 0
    return np.zeros((h, w), bool)


def _draw_logo(pkg: np.ndarray, design: Design, top: int, bottom: int) -> None:
    """The glyph, centred on the label band, as large as the band allows (in place)."""
    w = pkg.shape[1]
    scale = min(w, bottom - top) / 30
    thickness = max(1, int(scale * 2))
    (tw, th), _ = cv2.getTextSize(design.glyph, cv2.FONT_HERSHEY_DUPLEX, scale, thickness)
    org = ((w - tw) // 2, (top + bottom + th) // 2)
    cv2.putText(pkg, design.glyph, org, cv2.FONT_HERSHEY_DUPLEX, scale, design.logo, thickness, cv2.LINE_AA)


def _package(design: Design, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """The package drawn upright: ((h, w, 3) float32 RGB, (h, w) uint8 mask)."""
    pkg = np.empty((h, w, 3), np.uint8)  # cv2.putText draws on 8-bit images only
    pkg[:] = design.body
    pkg[_pattern(design, w, h)] = design.accent
    centre, height = design.band
    top, bottom = int((centre - height / 2) * h), int((centre + height / 2) * h)
    cv2.rectangle(pkg, (0, top), (w - 1, bottom), design.band_color, -1)
    _draw_logo(pkg, design, top, bottom)
    shade = 0.75 + 0.35 * np.sin(np.linspace(0.2, np.pi - 0.2, w, dtype=np.float32))  # round body
    return pkg.astype(np.float32) * shade[None, :, None], _body_mask(design, w, h)


def _frame(rng: np.random.Generator, aspect: float) -> tuple[int, int]:
    """(height, width) of a crop around a package of this aspect: longest side 128-256 px."""
    long_side = int(rng.integers(128, 257))
    if aspect >= 1:
        return long_side, max(24, int(long_side / aspect))
    return max(24, int(long_side * aspect)), long_side


def _neighbour(rng: np.random.Generator, canvas: np.ndarray, side: int) -> None:
    """A slice of another package at the left (side 0) or right (1) edge, as shelf crops have (in place)."""
    height, width = canvas.shape[:2]
    other = random_design(rng)
    ph = max(8, int(height * rng.uniform(0.7, 0.95)))
    pw = max(8, int(ph / max(other.aspect, 0.5)))
    shown = max(2, int(width * rng.uniform(0.06, 0.18)))
    pkg, mask = _package(other, pw, ph)
    y = int(rng.integers(0, height - ph + 1))
    cols = slice(pw - min(shown, pw), pw) if side == 0 else slice(0, min(shown, pw))
    piece, keep = pkg[:, cols], mask[:, cols][..., None] > 0
    x = 0 if side == 0 else width - piece.shape[1]
    np.copyto(canvas[y:y + ph, x:x + piece.shape[1]], piece * 0.85, where=keep)


def product_image(rng: np.random.Generator, design: Design) -> np.ndarray:
    """One photo-like crop of a package: (H, W, 3) uint8, longest side 128-256 px."""
    height, width = _frame(rng, design.aspect * rng.uniform(0.92, 1.08))
    fill = rng.uniform(0.68, 0.9)
    pw, ph = max(8, int(width * fill)), max(8, int(height * fill))
    pkg, mask = _package(design, pw, ph)
    canvas = np.empty((height, width, 3), np.float32)
    canvas[:] = rng.uniform(40, 220, 3)  # shelf or table behind, mottled
    canvas += (value_noise(0, 0, width, height, 12.0, int(rng.integers(1 << 31))) - 0.5)[..., None] * 40
    for side in (0, 1):
        if rng.random() < 0.5:
            _neighbour(rng, canvas, side)
    x = int(rng.integers(0, width - pw + 1))
    y = int(rng.integers(0, height - ph + 1))
    np.copyto(canvas[y:y + ph, x:x + pw], pkg, where=mask[..., None] > 0)
    return _photograph(rng, canvas)


def _photograph(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """Small rotation, lighting gradient and colour cast, blur and sensor noise."""
    h, w = canvas.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-6, 6)), 1.0)
    canvas = cv2.warpAffine(canvas, turn, (w, h), borderMode=cv2.BORDER_REPLICATE)
    light = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(1.0, 1.25), h, dtype=np.float32)
    canvas *= light[:, None, None] * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    canvas = cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(0.3, 1.0)))
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(rng.uniform(1, 5))
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def class_names(num_classes: int = NUM_CLASSES) -> list[str]:
    return [f"product_{index:03d}" for index in range(num_classes)]


def write_products(out: Path, split: str, counts: np.ndarray, *, seed: int,
                   progress: Progress | None) -> dict[str, int]:
    """Write `counts[c]` images of each class c into `out/<class name>/` (ImageFolder); in the
    "train" split some are filed under another class (`noisy_label`).

    Returns:
        {"images", "objects", "noisy_labels"}.
    """
    designs, names = class_designs(seed, len(counts)), class_names(len(counts))
    total, done, noisy = int(counts.sum()), 0, 0
    for label, design in enumerate(designs):
        for index in range(int(counts[label])):
            rgb = product_image(rng_for(seed, "classify", split, label, index), design)
            filed = noisy_label(seed, label, index, len(counts)) if split == "train" else label
            noisy += filed != label
            write_jpeg(out / names[filed] / f"{split}_{done:05d}.jpg", rgb)  # the name tells nothing
            done += 1
            report(progress, split, done, total)
    return split_summary(total, total) | {"noisy_labels": noisy}


def val_counts(train: np.ndarray) -> np.ndarray:
    """Validation images per class: about a quarter of its training images, at least one."""
    return np.array([val_count(int(n)) for n in train], np.int64)
