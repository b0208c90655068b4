"""Cytology scenes (S0): a stain, a cell table and a renderer for any region of the scene.

Rendering follows Beer-Lambert: every structure adds optical density (OD) per RGB channel,
and a pixel is `background * exp(-OD)`. Adding is order-free, so overlapping cells darken
each other like real smears, and a region can be rendered without the rest of the scene:
the 800 px tiles and the tile-by-tile slides use the same code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from leanvision.data.synth.cells import CellKind, Cells
from leanvision.data.synth.textures import (
    fractal_noise,
    paste_add,
    polygon_masks,
    value_noise,
    value_noise_at,
)

_HEMATOXYLIN = (0.65, 0.70, 0.29)  # Ruifrok & Johnston's stain vectors (OD per channel)
_EOSIN = (0.07, 0.99, 0.11)
_LIGHT_GREEN = (0.80, 0.25, 0.55)  # Pap cyanophilic cytoplasm: absorbs red, looks blue-green
_ORANGE_G = (0.10, 0.55, 0.85)
_UNIFORM_SD = 3**0.5  # half-width of a uniform distribution with unit variance
# Pixels rendered around a region so that the focus blur sees real neighbours and tiles
# rendered apart join without seams: OpenCV's Gaussian kernel for sigma <= 1 on float
# images has radius 4 (ksize = round(8 sigma + 1) | 1).
_MARGIN = 4


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.03, None)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _vary(rng: np.random.Generator, base: tuple[float, ...] | np.ndarray, desaturate: float) -> np.ndarray:
    """A stain vector with its hue jittered and pulled towards grey by `desaturate`."""
    v = _unit(np.asarray(base, np.float32) + rng.normal(0, 0.07, 3))
    return _unit((1 - desaturate) * v + desaturate * np.full(3, 3**-0.5, np.float32))


@dataclass(frozen=True, eq=False)
class Stain:
    """Colours of one slide or tile (stains vary between labs, batches and scanners).

    Attributes:
        background: (3,) float32 RGB of empty glass, 0-255.
        nucleus: (3,) float32 OD per unit of nuclear stain.
        cytoplasm: (2, 3) float32 OD per unit: [cyanophilic, eosinophilic].
        strength: multiplies every OD (stain intensity).
        wash: OD of the thin smear between cells.
        noise: per-pixel noise, grey levels (standard deviation).
        blur: Gaussian blur sigma in pixels (focus).
    """

    background: np.ndarray
    nucleus: np.ndarray
    cytoplasm: np.ndarray
    strength: float
    wash: float
    noise: float
    blur: float


def random_stain(rng: np.random.Generator) -> Stain:
    """A Pap-like (cyan and pink cytoplasm) or, one time in three, an H&E-like stain."""
    desaturate = float(rng.uniform(0.0, 0.35))
    eosin, orange, hematoxylin = (np.asarray(v, np.float32) for v in (_EOSIN, _ORANGE_G, _HEMATOXYLIN))
    if rng.random() < 1 / 3:  # H&E-like: pink and purplish-pink cytoplasm
        cyan, pink = eosin, eosin + 0.3 * hematoxylin
    else:  # Pap: cyanophilic (light green) and eosinophilic / orangeophilic cytoplasm
        cyan, pink = np.asarray(_LIGHT_GREEN, np.float32), 0.5 * (eosin + orange)
    level = rng.uniform(222, 250)
    return Stain(
        background=np.clip(level + rng.normal(0, 5, 3), 200, 255).astype(np.float32),
        nucleus=_vary(rng, _HEMATOXYLIN, desaturate * 0.5),
        cytoplasm=np.stack([_vary(rng, cyan, desaturate), _vary(rng, pink, desaturate)]),
        strength=float(rng.uniform(0.8, 1.25)),
        wash=float(rng.uniform(0.03, 0.14)),
        noise=float(rng.uniform(1.5, 4.0)),
        blur=float(rng.uniform(0.5, 1.0)),
    )


_DENSITY_SEED = 4  # offset from the scene seed of the slide density field


def density_at(xs: np.ndarray, ys: np.ndarray, scale: float, scene_seed: int) -> np.ndarray:
    """(N,) float32 cell density in [0, 1] at pixel points: about a third of a slide is empty.

    It is the field that thins the smear wash when a `Scene` with this seed and
    `density_scale=scale` is rendered, so cells sampled by it sit where the smear is.
    """
    return _density(value_noise_at(xs, ys, scale, scene_seed + _DENSITY_SEED))


def _density(noise: np.ndarray) -> np.ndarray:
    """Smoothstep of the noise from 0.3 (empty glass) to 0.6 (full density), in place."""
    t = np.clip(noise, 0.3, 0.6, out=noise)
    t -= np.float32(0.3)
    t *= np.float32(1 / 0.3)
    square = t * t  # t^2 (3 - 2t) with one temporary
    t *= np.float32(-2)
    t += np.float32(3)
    t *= square
    return t


@dataclass(frozen=True, eq=False)
class Scene:
    """A whole cytology image (tile or slide) before rendering.

    Attributes:
        width, height: image size in pixels.
        stain: its colours.
        cells: every cell, sorted by `cy` (so a region query is a binary search).
        seed: seed of the scene's texture fields.
        density_scale: feature size (px) of the empty / crowded areas of a slide; None for
            a tile, where the smear covers everything.
    """

    width: int
    height: int
    stain: Stain
    cells: Cells
    seed: int
    density_scale: float | None = None
    extent: np.ndarray = dataclasses.field(init=False, repr=False)  # (N,) cell radii
    reach: float = dataclasses.field(init=False, repr=False)  # the largest of them

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", self.cells.sorted_by_y())
        object.__setattr__(self, "extent", self.cells.extent)
        object.__setattr__(self, "reach", float(self.extent.max(initial=0)))

    def cells_in(self, x0: int, y0: int, x1: int, y1: int) -> Cells:
        """The cells that may touch the pixel rectangle [x0, x1) x [y0, y1)."""
        lo, hi = np.searchsorted(self.cells.cy, [y0 - self.reach, y1 + self.reach])
        cx, cy, ext = self.cells.cx[lo:hi], self.cells.cy[lo:hi], self.extent[lo:hi]
        hit = (cx + ext >= x0) & (cx - ext < x1) & (cy + ext >= y0) & (cy - ext < y1)
        return self.cells.take(np.arange(lo, hi)[hit])

    def abnormal_boxes(self) -> np.ndarray:
        """(M, 4) float32 xyxy boxes of the abnormal cells, clipped to the image."""
        boxes = self.cells.take(self.cells.kind == CellKind.ABNORMAL).boxes()
        limit = np.array([self.width, self.height, self.width, self.height], np.float32)
        return np.clip(boxes, 0, limit)


class Workspace:
    """Scratch arrays for rendering, reused from region to region while the size is unchanged.

    A fresh full-size float array costs ~3 µs per 4 KiB page in page faults here, more than
    the arithmetic done on it (PITFALLS.md); a slide renders hundreds of regions.
    """

    def __init__(self) -> None:
        self.shape: tuple[int, int] | None = None

    def fit(self, height: int, width: int) -> Workspace:
        """Make the arrays (height, width) (margin included); keep them if already so."""
        if self.shape != (height, width):
            self.shape = (height, width)
            self.amount = np.empty((3, height, width), np.float32)  # stain amounts
            # Texture fields and their scratch, then the three RGB channels.
            self.planes = [np.empty((height, width), np.float32) for _ in range(3)]
        return self


def _accumulate(cells: Cells, x0: int, y0: int, amount: np.ndarray) -> None:
    """Add the cells' stain amounts into (3, H, W) `amount`: cyanophilic, eosinophilic, nuclear."""
    cyto = polygon_masks(cells.cytoplasm_outlines(), cells.cyto_od, rim=0.6)
    for tint, (patch, px, py) in zip(cells.tint.tolist(), cyto, strict=True):
        paste_add(amount[tint], x0, y0, patch, px, py)
    for patch, px, py in polygon_masks(cells.nucleus_outlines(), cells.nuc_od, rim=0.4):
        paste_add(amount[2], x0, y0, patch, px, py)


def _stain_amounts(scene: Scene, x0: int, y0: int, ws: Workspace) -> np.ndarray:
    """(3, H, W) stain amounts of the region at (x0, y0) of the workspace's size."""
    height, width = ws.shape
    amount, (field, layer, step) = ws.amount, ws.planes
    amount.fill(0)
    _accumulate(scene.cells_in(x0, y0, x0 + width, y0 + height), x0, y0, amount)
    # Granular cytoplasm (~7 px) and coarse chromatin (~2.5 px), as global texture fields.
    texture = value_noise(x0, y0, width, height, 7.0, scene.seed + 1, out=field, scratch=step)
    _affine(texture, 0.6, 0.7)
    amount[0] *= texture
    amount[1] *= texture
    chromatin = value_noise(x0, y0, width, height, 2.5, scene.seed + 2, out=field, scratch=step)
    amount[2] *= _affine(chromatin, 0.7, 0.65)
    # The thin smear between cells: patches ~120 px, none on a slide's empty glass.
    wash = fractal_noise(x0, y0, width, height, 120.0, scene.seed + 3, out=field, scratch=(layer, step))
    wash_od = scene.stain.wash
    np.clip(_affine(wash, 2.2 * wash_od, -0.8 * wash_od), 0, wash_od, out=wash)
    if scene.density_scale is not None:
        density = value_noise(x0, y0, width, height, scene.density_scale, scene.seed + _DENSITY_SEED,
                              out=layer, scratch=step)
        wash *= _density(density)
    amount[0] += wash
    return amount


def _affine(field: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """`field * scale + offset`, in place."""
    field *= np.float32(scale)
    field += np.float32(offset)
    return field


def _transmission(scene: Scene, amount: np.ndarray, ws: Workspace) -> list[np.ndarray]:
    """Per RGB channel, (H, W) float32 `background * exp(-OD)` after the focus blur."""
    stain = scene.stain
    vectors = np.concatenate([stain.cytoplasm, stain.nucleus[None]]) * -stain.strength
    channels = []
    for k, plane in enumerate(ws.planes):
        cv2.addWeighted(amount[0], float(vectors[0, k]), amount[1], float(vectors[1, k]), 0.0, dst=plane)
        cv2.scaleAdd(amount[2], float(vectors[2, k]), plane, dst=plane)
        cv2.GaussianBlur(plane, (0, 0), stain.blur, dst=plane)
        cv2.exp(plane, dst=plane)
        plane *= stain.background[k]
        channels.append(plane)
    return channels


def render_region(scene: Scene, x0: int, y0: int, width: int, height: int,
                  rng: np.random.Generator, workspace: Workspace | None = None) -> np.ndarray:
    """Render the pixels [x0, x0 + width) x [y0, y0 + height) of `scene`.

    Args:
        scene: the scene.
        x0, y0, width, height: the region, in scene pixels (may extend past the scene).
        rng: source of the per-pixel noise (the only part not fixed by the scene).
        workspace: scratch arrays to reuse across calls (one is made if None).

    Returns:
        (height, width, 3) uint8 RGB.
    """
    m = _MARGIN  # rendered around the region so the blur sees real neighbours: no seams
    ws = (workspace or Workspace()).fit(height + 2 * m, width + 2 * m)
    amount = _stain_amounts(scene, x0 - m, y0 - m, ws)
    rgb = np.empty((height, width, 3), np.uint8)
    sd = scene.stain.noise
    # Uniform sensor noise from bytes: a quarter of the cost of Gaussian floats, same look.
    noise = rng.integers(0, 256, (3, height, width), dtype=np.uint8) if sd > 0 else None
    for k, plane in enumerate(_transmission(scene, amount, ws)):
        view = plane[m:m + height, m:m + width]
        if noise is None:
            view += 0.5  # rounding
        else:
            _add_noise(view, noise[k], sd)
        np.copyto(rgb[..., k], np.clip(view, 0, 255, out=view), casting="unsafe")
    return rgb


def _add_noise(view: np.ndarray, noise: np.ndarray, sd: float) -> None:
    """`view += uniform noise of standard deviation sd (from uint8 bytes) + 0.5`, in place.

    Scaled around the uint8 addition so that no full-size float temporary is made.
    """
    step = np.float32(sd * _UNIFORM_SD / 127.5)
    view *= 1 / step
    view += noise
    view += (0.5 - sd * _UNIFORM_SD) / step
    view *= step
