"""S4 street scenes for semantic segmentation, Cityscapes-like (2:1, 512 x 256 px).

Sky, buildings (background), a road in perspective with lane marks, then cars, people,
poles and signs drawn far to near (near objects occlude far ones). Like Cityscapes' void
label, a thin band on every object boundary is `IGNORE` (mixed pixels after blur and JPEG),
and some images have a blurred patch (a smudge on the lens) that is `IGNORE` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from leanvision.data.formats.segmentation import SegmentationSet, write_classes
from leanvision.data.synth.common import (
    Progress,
    report,
    rng_for,
    split_summary,
    write_jpeg,
    write_png,
)
from leanvision.data.synth.textures import fractal_noise

CLASSES = ("background", "road", "sky", "car", "person", "pole", "sign")
BACKGROUND, ROAD, SKY, CAR, PERSON, POLE, SIGN = range(len(CLASSES))
IGNORE = 255
WIDTH, HEIGHT = 512, 256
SMUDGE_SHARE = 0.3


@dataclass
class _Canvas:
    """The image being drawn (float32 RGB) and its label mask, painted together."""

    rgb: np.ndarray
    mask: np.ndarray

    def fill_poly(self, points: np.ndarray, color: np.ndarray, label: int) -> None:
        pts = [np.round(points).astype(np.int32)]
        cv2.fillPoly(self.rgb, pts, _color(color), cv2.LINE_AA)
        cv2.fillPoly(self.mask, pts, label)

    def ellipse(self, centre: tuple[float, float], axes: tuple[float, float], color: np.ndarray, label: int) -> None:
        c = (round(centre[0]), round(centre[1]))
        a = (max(1, round(axes[0])), max(1, round(axes[1])))
        cv2.ellipse(self.rgb, c, a, 0, 0, 360, _color(color), -1, cv2.LINE_AA)
        cv2.ellipse(self.mask, c, a, 0, 0, 360, label, -1)

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: np.ndarray, label: int) -> None:
        self.fill_poly(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), color, label)


def _color(rgb: np.ndarray) -> tuple[float, float, float]:
    return float(rgb[0]), float(rgb[1]), float(rgb[2])


def _shade(rng: np.random.Generator, base: tuple[float, float, float], spread: float) -> np.ndarray:
    return np.clip(np.asarray(base, np.float32) + rng.normal(0, spread, 3), 0, 255).astype(np.float32)


def _layout(rng: np.random.Generator, canvas: _Canvas) -> tuple[int, float]:
    """Sky, buildings and road; returns the horizon row and the road half-width at the bottom."""
    h, w = canvas.mask.shape
    horizon = int(h * rng.uniform(0.35, 0.5))
    canvas.rgb[:] = _shade(rng, (110, 110, 105), 15)
    canvas.mask[:] = BACKGROUND
    sky_color = _shade(rng, (150, 185, 225), 20)
    canvas.rect(0, 0, w, horizon, sky_color, SKY)
    _buildings(rng, canvas, horizon)
    half = w * rng.uniform(0.35, 0.6)
    centre = w * rng.uniform(0.4, 0.6)
    road = np.array([[centre - 4, horizon], [centre + 4, horizon], [centre + half, h], [centre - half, h]])
    canvas.fill_poly(road, _shade(rng, (85, 85, 90), 10), ROAD)
    _lane_marks(rng, canvas, centre, horizon)
    return horizon, half


def _buildings(rng: np.random.Generator, canvas: _Canvas, horizon: int) -> None:
    x = 0.0
    w = canvas.mask.shape[1]
    while x < w:
        width = rng.uniform(30, 110)
        top = horizon * rng.uniform(0.05, 0.8)
        canvas.rect(x, top, x + width, horizon + 2, _shade(rng, (140, 125, 110), 35), BACKGROUND)
        x += width


def _lane_marks(rng: np.random.Generator, canvas: _Canvas, centre: float, horizon: int) -> None:
    """Dashed centre line, painted on the road (still labelled road)."""
    h = canvas.mask.shape[0]
    white = _shade(rng, (225, 225, 215), 8)
    for t0 in np.arange(0.05, 1.0, 0.16):
        t1 = t0 + 0.07
        y0, y1 = horizon + t0**2 * (h - horizon), horizon + t1**2 * (h - horizon)
        half0, half1 = 0.5 + 3 * t0**2, 0.5 + 3 * t1**2
        quad = np.array([[centre - half0, y0], [centre + half0, y0], [centre + half1, y1], [centre - half1, y1]])
        canvas.fill_poly(quad, white, ROAD)


def _scale_at(y: float, horizon: int, height: int) -> float:
    """Object size factor at image row y (0 at the horizon, 1 at the bottom edge)."""
    return max(0.05, (y - horizon) / (height - horizon))


def _car(rng: np.random.Generator, canvas: _Canvas, x: float, y: float, s: float) -> None:
    w, h = 150 * s, 65 * s
    body = _shade(rng, tuple(rng.uniform(30, 220, 3)), 5)
    canvas.rect(x - w / 2, y - h * 0.6, x + w / 2, y, body, CAR)
    canvas.rect(x - w * 0.3, y - h, x + w * 0.3, y - h * 0.55, body * 0.8, CAR)
    canvas.rect(x - w * 0.25, y - h * 0.93, x + w * 0.25, y - h * 0.62, _shade(rng, (60, 75, 90), 10), CAR)
    for wx in (x - w * 0.3, x + w * 0.3):
        canvas.ellipse((wx, y), (w * 0.1, h * 0.17), np.full(3, 25, np.float32), CAR)


def _person(rng: np.random.Generator, canvas: _Canvas, x: float, y: float, s: float) -> None:
    h = 110 * s
    cloth = _shade(rng, tuple(rng.uniform(20, 200, 3)), 5)
    canvas.ellipse((x, y - h * 0.45), (h * 0.12, h * 0.33), cloth, PERSON)
    canvas.ellipse((x, y - h * 0.88), (h * 0.07, h * 0.08), _shade(rng, (200, 150, 120), 25), PERSON)


def _pole_and_sign(rng: np.random.Generator, canvas: _Canvas, x: float, y: float, s: float) -> None:
    h, w = 200 * s, max(1.5, 6 * s)
    canvas.rect(x - w / 2, y - h, x + w / 2, y, _shade(rng, (120, 120, 125), 15), POLE)
    if rng.random() < 0.7:
        r = max(2.0, 18 * s)
        cy = y - h - r * 0.6
        if rng.random() < 0.5:
            canvas.ellipse((x, cy), (r, r), _shade(rng, (200, 40, 40), 20), SIGN)
        else:
            tri = np.array([[x, cy - r], [x + r, cy + r * 0.8], [x - r, cy + r * 0.8]])
            canvas.fill_poly(tri, _shade(rng, (230, 200, 40), 20), SIGN)


_DRAW = {CAR: _car, PERSON: _person, POLE: _pole_and_sign}


def _objects(rng: np.random.Generator, canvas: _Canvas, horizon: int, half: float) -> int:
    """Cars on the road, people and poles beside it, far to near; returns how many."""
    h, w = canvas.mask.shape
    kinds = rng.choice([CAR, PERSON, POLE], size=int(rng.integers(2, 14)), p=[0.45, 0.35, 0.2])
    ys = horizon + (h - horizon) * np.sqrt(rng.uniform(0.05, 1.0, len(kinds)))
    for kind, y in sorted(zip(kinds.tolist(), ys.tolist(), strict=True), key=lambda item: item[1]):
        s = _scale_at(y, horizon, h)
        x = rng.uniform(0, w) if kind != CAR else w / 2 + rng.uniform(-0.8, 0.8) * half * s
        _DRAW[kind](rng, canvas, float(x), float(y), s)
    return len(kinds)


def _ignore_boundaries(mask: np.ndarray) -> None:
    """Label the 1 px ring just outside each object as IGNORE (in place).

    Outside, not across, the boundary: a far pole only 2 px wide keeps its pixels.
    """
    kernel = np.ones((3, 3), np.uint8)
    for label in (CAR, PERSON, POLE, SIGN):
        inside = (mask == label).astype(np.uint8)
        if inside.any():
            mask[(cv2.dilate(inside, kernel) > 0) & (mask != label) & (mask != IGNORE)] = IGNORE


def _smudge(rng: np.random.Generator, rgb: np.ndarray, mask: np.ndarray) -> None:
    """Blur a random patch beyond recognition and label it IGNORE (in place)."""
    h, w = mask.shape
    pw, ph = int(rng.uniform(0.1, 0.25) * w), int(rng.uniform(0.15, 0.35) * h)
    x, y = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
    rgb[y:y + ph, x:x + pw] = cv2.GaussianBlur(rgb[y:y + ph, x:x + pw], (0, 0), 9)
    mask[y:y + ph, x:x + pw] = IGNORE


def street_scene(rng: np.random.Generator, width: int = WIDTH, height: int = HEIGHT) -> tuple[np.ndarray, np.ndarray, int]:
    """One scene: ((H, W, 3) uint8 RGB, (H, W) uint8 class mask with IGNORE, object count)."""
    canvas = _Canvas(np.zeros((height, width, 3), np.float32), np.zeros((height, width), np.uint8))
    horizon, half = _layout(rng, canvas)
    count = _objects(rng, canvas, horizon, half)
    texture = fractal_noise(0, 0, width, height, 16.0, int(rng.integers(1 << 31))) - 0.5
    rgb = canvas.rgb + texture[..., None] * np.float32(rng.uniform(15, 35))
    rgb = cv2.GaussianBlur(rgb, (0, 0), float(rng.uniform(0.4, 0.8)))
    rgb *= np.float32(rng.uniform(0.75, 1.2))
    rgb += rng.normal(0, rng.uniform(1, 4), rgb.shape).astype(np.float32)
    mask = canvas.mask
    _ignore_boundaries(mask)
    if rng.random() < SMUDGE_SHARE:
        _smudge(rng, rgb, mask)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), mask, count


def write_streets(out: Path, split: str, count: int, *, seed: int, progress: Progress | None) -> dict[str, int]:
    """Write `count` scenes to `out/images/*.jpg` and `out/masks/*.png` plus classes.json."""
    objects = 0
    for index in range(count):
        rgb, mask, n = street_scene(rng_for(seed, "segment", split, index))
        write_jpeg(out / "images" / f"street_{index:05d}.jpg", rgb)
        write_png(out / "masks" / f"street_{index:05d}.png", mask)
        objects += n
        report(progress, split, index + 1, count)
    write_classes(SegmentationSet(CLASSES, [], out / "images", out / "masks", IGNORE), out)
    return split_summary(count, objects)
