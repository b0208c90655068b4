"""S3 crowd counting: street and plaza scenes seen from above, one point per head.

Heads shrink towards the horizon (ground-plane perspective: size is proportional to the
distance below the horizon), crowds gather in clusters from sparse to very dense, and one
image in ten (index 3, 13, 23, ...) is empty: a count of 0 is a real case (NAE skips it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from leanvision.data.formats.counting import CountingSet, PointRecord, write_points_json
from leanvision.data.synth.common import Progress, report, rng_for, split_summary, write_jpeg
from leanvision.data.synth.textures import fractal_noise, value_noise

MAX_LARGE_SIZE = 6144  # px; a large image is rendered whole (peak RSS ~0.5 GB at 6144 x 4608)
_SKIN = np.array([[224, 172, 140], [198, 134, 99], [141, 85, 56], [90, 56, 38], [236, 196, 164]], np.float32)
_HAIR = np.array([[20, 16, 14], [45, 30, 20], [70, 50, 30], [110, 80, 50], [150, 150, 150]], np.float32)
_GRID = 8  # px: resolution of the map people are sampled from


@dataclass(frozen=True)
class _Layout:
    """Where people can stand: ground below `horizon`, heads `near` px at the bottom."""

    width: int
    height: int
    horizon: int
    near: float  # head radius at the bottom edge, px
    far: float  # head radius at the horizon, px

    def radius(self, y: np.ndarray) -> np.ndarray:
        t = np.clip((y - self.horizon) / max(self.height - self.horizon, 1), 0, 1)
        return self.far + (self.near - self.far) * t


def _random_layout(rng: np.random.Generator, width: int, height: int) -> _Layout:
    """Horizon at 8-40 % of the height; near heads 6-14 px in radius (more in larger
    images), far ones 12-30 % of that."""
    near = float(rng.uniform(6, 14) * (max(width, height) / 1024) ** 0.5)
    return _Layout(width, height, int(height * rng.uniform(0.08, 0.4)), near, max(1.2, near * rng.uniform(0.12, 0.3)))


def _background(rng: np.random.Generator, layout: _Layout) -> np.ndarray:
    """(H, W, 3) uint8: building facades with windows above the horizon, paving below."""
    w, h, hz = layout.width, layout.height, layout.horizon
    seed = int(rng.integers(1 << 31))
    ground = rng.uniform(90, 180) + rng.normal(0, 12, 3)
    facade = rng.uniform(80, 200) + rng.normal(0, 20, 3)
    # Texture, with light falling off towards the horizon, as one (H, W) luminance factor.
    light = fractal_noise(0, 0, w, h, 40.0, seed, octaves=2)
    light *= np.float32(rng.uniform(0.2, 0.45))
    light += np.linspace(0.7, 1.0, h, dtype=np.float32)[:, None]
    canvas = np.empty((h, w, 3), np.uint8)
    for k in range(3):
        base = np.full(h, ground[k], np.float32)
        base[:hz] = facade[k]
        np.copyto(canvas[..., k], np.clip(light * base[:, None], 0, 255), casting="unsafe")
    _windows(rng, canvas[:hz])
    return canvas


def _windows(rng: np.random.Generator, facade: np.ndarray) -> None:
    """Draw a grid of darker windows on the facade strip (in place)."""
    h, w = facade.shape[:2]
    step = int(rng.integers(18, 48))
    color = tuple(int(c) for c in rng.uniform(20, 90, 3))
    for y in range(step // 3, h - step // 3, step):
        for x in range(step // 4, w - step // 4, step):
            cv2.rectangle(facade, (x, y), (x + step // 2, y + step // 2), color, -1)


def _crowd_points(rng: np.random.Generator, layout: _Layout, count: int) -> np.ndarray:
    """(count, 2) head centres: dense where a crowd field is high, perspective-weighted."""
    gw, gh = -(-layout.width // _GRID), -(-layout.height // _GRID)
    field = value_noise(0, 0, gw, gh, rng.uniform(4, 16), int(rng.integers(1 << 31)))
    crowd = np.clip((field - rng.uniform(0.2, 0.6)) * 4, 0, 1) ** 2 + 0.02
    ys = (np.arange(gh) + 0.5) * _GRID
    # Equal people per square metre of ground means more per pixel where heads are small.
    weight = crowd / layout.radius(ys)[:, None] ** 2
    weight[ys < layout.horizon + layout.far] = 0
    cells = rng.choice(weight.size, size=count, p=(weight / weight.sum()).ravel())
    xy = np.stack([cells % gw, cells // gw], axis=1) + rng.random((count, 2))
    points = xy * _GRID
    return np.clip(points, 0, [layout.width - 0.01, layout.height - 0.01]).astype(np.float32)


def _draw_people(canvas: np.ndarray, rng: np.random.Generator, points: np.ndarray, radii: np.ndarray) -> None:
    """Shoulders in clothing colour, a head (skin) and hair or, sometimes, a hat, per point.

    Drawn in the given order with cv2's 4-bit fixed point (sub-pixel positions and sizes).
    """
    n = len(points)
    cloth = rng.uniform(10, 230, (n, 3)) * 0.6 + rng.uniform(40, 160, (n, 1)) * 0.4  # muted
    skin = _SKIN[rng.integers(len(_SKIN), size=n)] * rng.uniform(0.8, 1.1, (n, 1))
    top = np.where(rng.random((n, 1)) < 0.85, _HAIR[rng.integers(len(_HAIR), size=n)], rng.uniform(0, 255, (n, 3)))
    x, y, r = points[:, 0], points[:, 1], radii
    shapes = [  # (centre x, centre y, semi-axis a, semi-axis b, colours, start angle)
        (x, y + 2.3 * r, 1.6 * r, 1.5 * r, cloth, 0),
        (x, y, 0.85 * r, r, skin, 0),
        (x, y - 0.25 * r, 0.9 * r, 0.8 * r, top, 180),
    ]
    fixed = [(np.round(np.stack([cx, cy], 1) * 16).astype(int).tolist(),
              np.maximum(np.round(np.stack([a, b], 1) * 16), 8).astype(int).tolist(),
              np.clip(colors, 0, 255).astype(int).tolist(), start) for cx, cy, a, b, colors, start in shapes]
    for i in range(n):
        for centres, axes, colors, start in fixed:
            cv2.ellipse(canvas, centres[i], axes[i], 0, start, 360, colors[i], -1, cv2.LINE_AA, 4)


def people_count(rng: np.random.Generator, index: int, largest: int) -> int:
    """0 for image index 3, 13, 23, ...; else log-uniform from 3 to `largest`."""
    if index % 10 == 3:
        return 0
    return int(np.exp(rng.uniform(np.log(3), np.log(largest))))


def crowd_image(rng: np.random.Generator, width: int, height: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one scene.

    Returns:
        ((height, width, 3) uint8 RGB, (count, 2) float32 head centres x, y in pixels).
    """
    layout = _random_layout(rng, width, height)
    canvas = _background(rng, layout)
    points = _crowd_points(rng, layout, count) if count else np.zeros((0, 2), np.float32)
    order = np.argsort(points[:, 1], kind="stable")  # far first: near people occlude
    _draw_people(canvas, rng, points[order], layout.radius(points[order, 1]))
    canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.4, 0.9))
    # Sensor noise (uniform, +-amplitude) and exposure, in saturating 8-bit arithmetic.
    amplitude = int(rng.integers(3, 8))
    canvas = cv2.add(canvas, rng.integers(0, 2 * amplitude + 1, canvas.shape, dtype=np.uint8))
    canvas = cv2.subtract(canvas, np.full(canvas.shape, amplitude, np.uint8))
    return cv2.convertScaleAbs(canvas, alpha=float(rng.uniform(0.75, 1.2))), points


def _image_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height): long side 640-1024 px, landscape 4:3 to 16:9 or, rarely, portrait."""
    long_side = int(rng.integers(640, 1025))
    short_side = int(long_side / rng.uniform(4 / 3, 16 / 9))
    return (short_side, long_side) if rng.random() < 0.15 else (long_side, short_side)


def _write(out: Path, records: list[PointRecord]) -> dict[str, int]:
    write_points_json(CountingSet(records, out / "images"), out)
    return split_summary(len(records), sum(len(r.points) for r in records))


def write_crowds(out: Path, split: str, count: int, *, seed: int, progress: Progress | None) -> dict[str, int]:
    """Write `count` crowd images and `points.json` into `out`."""
    records = []
    for index in range(count):
        rng = rng_for(seed, "count", split, index)
        width, height = _image_size(rng)
        rgb, points = crowd_image(rng, width, height, people_count(rng, index, 2000))
        name = f"crowd_{index:05d}.jpg"
        write_jpeg(out / "images" / name, rgb)
        records.append(PointRecord(name, width, height, points))
        report(progress, split, index + 1, count)
    return _write(out, records)


def write_large_crowds(out: Path, count: int, size: int, *, seed: int,
                       progress: Progress | None) -> dict[str, int]:
    """Write `count` large crowd images (`size` x 3/4 `size` px, 500-5000 people) into `out`."""
    records = []
    for index in range(count):
        rng = rng_for(seed, "count", "large", index)
        width, height = size, size * 3 // 4
        rgb, points = crowd_image(rng, width, height, int(np.exp(rng.uniform(np.log(500), np.log(5000)))))
        name = f"crowd_large_{index:03d}.jpg"
        write_jpeg(out / "images" / name, rgb)
        records.append(PointRecord(name, width, height, points))
        report(progress, "large", index + 1, count)
    return _write(out, records)
