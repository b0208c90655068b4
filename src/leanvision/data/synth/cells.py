"""The cells of a synthetic cytology scene: a table of shape and stain parameters.

Three kinds, sized for the 800 px tiles of S0 (about 0.5 µm per pixel):
- normal squamous cells: large pale polygonal cytoplasm (radius 22-42 px), small nucleus
  (radius 2.5-6 px), either vesicular (pale) or pyknotic (very small and dark);
- abnormal cells (the target, HSIL-like): cells 36-112 px across with dense cytoplasm and
  an enlarged (radius 9-26 px), irregular, dark (hyperchromatic) nucleus spanning 40-70 %
  of the cell's radius;
- inflammatory cells: tiny (radius 5-7 px) with a small dark lobed nucleus, in groups.

Darkness alone (pyknotic and inflammatory nuclei) and size alone (large normal cells) do
not make a cell abnormal; nucleus size *and* darkness *and* N/C ratio do, as in Bethesda.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

import numpy as np

from leanvision.data.synth.textures import blob_vertices, smooth_jitter

VERTICES = 16  # outline vertices per cytoplasm and nucleus


class CellKind(enum.IntEnum):
    NORMAL = 0
    ABNORMAL = 1
    INFLAMMATORY = 2
    # A peripheral blood smear (blood.py): the three classes of the public blood-cell sets.
    RBC = 3
    WBC = 4
    PLATELET = 5


@dataclass(frozen=True, eq=False)
class Cells:
    """N cells as parallel arrays; pixel units, global (scene) coordinates.

    Attributes:
        kind: (N,) uint8 `CellKind`.
        cx, cy, rx, ry, angle: (N,) cytoplasm centre, semi-axes, rotation (radians).
        jitter: (N, VERTICES) relative radius change of the cytoplasm outline.
        tint: (N,) uint8, 0 = cyanophilic, 1 = eosinophilic cytoplasm.
        cyto_od: (N,) optical density of the cytoplasm.
        nx, ny, nrx, nry, nangle: (N,) nucleus centre, semi-axes, rotation.
        njitter: (N, VERTICES) relative radius change of the nucleus outline.
        nuc_od: (N,) optical density of the nucleus.
    """

    kind: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    rx: np.ndarray
    ry: np.ndarray
    angle: np.ndarray
    jitter: np.ndarray
    tint: np.ndarray
    cyto_od: np.ndarray
    nx: np.ndarray
    ny: np.ndarray
    nrx: np.ndarray
    nry: np.ndarray
    nangle: np.ndarray
    njitter: np.ndarray
    nuc_od: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)

    def take(self, index: np.ndarray) -> Cells:
        """The cells at `index` (an index array or boolean mask), every field at once."""
        return Cells(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    @staticmethod
    def concat(parts: list[Cells]) -> Cells:
        names = [f.name for f in dataclasses.fields(Cells)]
        return Cells(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})

    def sorted_by_y(self) -> Cells:
        return self.take(np.argsort(self.cy, kind="stable"))

    @property
    def extent(self) -> np.ndarray:
        """(N,) float32 radius around (cx, cy) that holds the whole cell, in pixels."""
        jit = 1 + np.abs(self.jitter).max(axis=1, initial=0)
        njit = 1 + np.abs(self.njitter).max(axis=1, initial=0)
        nucleus = np.hypot(self.nx - self.cx, self.ny - self.cy) + np.maximum(self.nrx, self.nry) * njit
        return np.maximum(np.maximum(self.rx, self.ry) * jit, nucleus) + 2

    def cytoplasm_outlines(self) -> np.ndarray:
        """(N, VERTICES, 2) float32 cytoplasm outlines."""
        return blob_vertices(self.cx, self.cy, self.rx, self.ry, self.angle, self.jitter)

    def nucleus_outlines(self) -> np.ndarray:
        """(N, VERTICES, 2) float32 nucleus outlines."""
        return blob_vertices(self.nx, self.ny, self.nrx, self.nry, self.nangle, self.njitter)

    def boxes(self) -> np.ndarray:
        """(N, 4) float32 xyxy boxes around cytoplasm and nucleus, widened to whole pixels."""
        pts = np.concatenate([self.cytoplasm_outlines(), self.nucleus_outlines()], axis=1)
        lo, hi = np.floor(pts.min(axis=1)), np.ceil(pts.max(axis=1))
        return np.concatenate([lo, hi], axis=1).astype(np.float32)


_ABNORMAL_NUCLEUS_PX = (9.0, 26.0)


@dataclass(frozen=True)
class _Shape:
    """Parameter ranges of one cell kind (uniform between the bounds)."""

    radius: tuple[float, float]
    aspect: tuple[float, float]
    jitter: tuple[float, float]
    cyto_od: tuple[float, float]
    p_eosin: float
    nucleus: tuple[float, float]  # absolute radius in px, or relative to `radius` if `relative`
    relative: bool
    n_aspect: tuple[float, float]
    n_jitter: tuple[float, float]
    n_offset: float  # max nucleus offset, as a fraction of the cell radius
    nuc_od: tuple[float, float]
    nucleus_px: tuple[float, float] = _ABNORMAL_NUCLEUS_PX  # clip of a relative nucleus radius


_VESICULAR = _Shape((22, 42), (0.6, 1.0), (0.06, 0.13), (0.16, 0.32), 0.4,
                    (4.0, 6.0), False, (0.8, 1.0), (0.02, 0.05), 0.3, (0.45, 0.75))
_PYKNOTIC = dataclasses.replace(_VESICULAR, nucleus=(2.5, 3.5), nuc_od=(0.9, 1.3), p_eosin=0.6)
_ABNORMAL = _Shape((24, 56), (0.75, 1.0), (0.05, 0.11), (0.24, 0.42), 0.25,
                   (0.42, 0.7), True, (0.7, 1.0), (0.08, 0.16), 0.15, (1.1, 1.7))
_INFLAMMATORY = _Shape((5, 7), (0.85, 1.0), (0.03, 0.08), (0.08, 0.16), 0.8,
                       (2.2, 3.2), False, (0.7, 1.0), (0.15, 0.25), 0.2, (0.9, 1.3))
_PYKNOTIC_SHARE = 0.3
ABNORMAL_SPACING = 45.0  # px between abnormal cell centres: box IoU stays below ~0.4


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], n).astype(np.float32)


def _sample(rng: np.random.Generator, shape: _Shape, kind: CellKind, cx: np.ndarray, cy: np.ndarray) -> Cells:
    n = len(cx)
    rx = _uniform(rng, shape.radius, n)
    nr = _uniform(rng, shape.nucleus, n)
    if shape.relative:
        nr = np.clip(nr * rx, *shape.nucleus_px).astype(np.float32)
    offset = _uniform(rng, (0, shape.n_offset), n) * rx
    direction = _uniform(rng, (0, 2 * np.pi), n)
    return Cells(
        kind=np.full(n, kind, np.uint8),
        cx=cx.astype(np.float32), cy=cy.astype(np.float32),
        rx=rx, ry=rx * _uniform(rng, shape.aspect, n), angle=_uniform(rng, (0, np.pi), n),
        jitter=smooth_jitter(rng, n, VERTICES, _uniform(rng, shape.jitter, n)),
        tint=(rng.random(n) < shape.p_eosin).astype(np.uint8),
        cyto_od=_uniform(rng, shape.cyto_od, n),
        nx=(cx + offset * np.cos(direction)).astype(np.float32),
        ny=(cy + offset * np.sin(direction)).astype(np.float32),
        nrx=nr, nry=nr * _uniform(rng, shape.n_aspect, n), nangle=_uniform(rng, (0, np.pi), n),
        njitter=smooth_jitter(rng, n, VERTICES, _uniform(rng, shape.n_jitter, n)),
        nuc_od=_uniform(rng, shape.nuc_od, n),
    )


def normal_cells(rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray) -> Cells:
    """Normal squamous cells centred at (N,) cx, cy; about 30 % with pyknotic nuclei."""
    pyknotic = rng.random(len(cx)) < _PYKNOTIC_SHARE
    parts = [_sample(rng, _VESICULAR, CellKind.NORMAL, cx[~pyknotic], cy[~pyknotic]),
             _sample(rng, _PYKNOTIC, CellKind.NORMAL, cx[pyknotic], cy[pyknotic])]
    return Cells.concat(parts)


def abnormal_cells(rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray) -> Cells:
    """Abnormal (target) cells centred at (N,) cx, cy."""
    return _sample(rng, _ABNORMAL, CellKind.ABNORMAL, cx, cy)


def inflammatory_cells(rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray) -> Cells:
    """Inflammatory cells centred at (N,) cx, cy."""
    return _sample(rng, _INFLAMMATORY, CellKind.INFLAMMATORY, cx, cy)


# Blood, sized for 640 x 480 smear photos like the public blood-cell sets: red cells 64-92 px
# across (eosinophilic, a faint central pallor as the "nucleus"), white cells 110-160 px with
# a large dark lobed nucleus, platelets 16-28 px, small dark granular bodies.
_BLOOD = {
    CellKind.RBC: _Shape((32, 46), (0.85, 1.0), (0.02, 0.06), (0.34, 0.52), 1.0,
                         (0.0, 0.0), False, (0.8, 1.0), (0.0, 0.0), 0.0, (0.0, 0.0)),
    CellKind.WBC: _Shape((55, 80), (0.85, 1.0), (0.03, 0.08), (0.10, 0.20), 0.2,
                         (0.55, 0.75), True, (0.6, 0.9), (0.18, 0.30), 0.2, (1.1, 1.6), (28.0, 60.0)),
    CellKind.PLATELET: _Shape((8, 14), (0.7, 1.0), (0.08, 0.16), (0.25, 0.45), 0.0,
                              (0.5, 0.8), True, (0.7, 1.0), (0.15, 0.25), 0.2, (0.7, 1.1), (3.0, 11.0)),
}


def blood_cells(rng: np.random.Generator, kind: CellKind, cx: np.ndarray, cy: np.ndarray) -> Cells:
    """Blood cells of `kind` (RBC, WBC or PLATELET) centred at (N,) cx, cy."""
    return _sample(rng, _BLOOD[kind], kind, cx, cy)


def cluster_points(rng: np.random.Generator, centres: np.ndarray, sizes: np.ndarray,
                   spread: float | np.ndarray) -> np.ndarray:
    """Points scattered (Gaussian, `spread` px) around (M, 2) centres, sizes[m] per centre.

    Returns:
        (sum(sizes), 2) float64 x, y in pixels.
    """
    repeated = np.repeat(np.asarray(centres, np.float64).reshape(-1, 2), sizes, axis=0)
    sigma = np.repeat(np.broadcast_to(np.asarray(spread, np.float64), len(sizes)), sizes)
    return repeated + rng.standard_normal(repeated.shape) * sigma[:, None]


def spaced(points: np.ndarray, min_distance: float) -> np.ndarray:
    """The (N, 2) points, dropping each that lies within `min_distance` px of a kept one.

    Keeps neighbouring target cells from overlapping so much that their boxes have IoU
    above 0.5, which no NMS threshold could keep apart.
    """
    kept: list[np.ndarray] = []
    for point in np.asarray(points, np.float64).reshape(-1, 2):
        if not kept or np.min(np.hypot(*(np.asarray(kept) - point).T)) >= min_distance:
            kept.append(point)
    return np.asarray(kept, np.float64).reshape(-1, 2)
