"""`data preview`: a grid of augmented samples with their boxes, to see what a recipe does.

Torch-free (numpy + cv2), so it runs on the base install. It uses the same pieces as the
training dataset (decoding, `build_augmentation`, per-sample generators, letterbox), so
the grid shows what the trainer gets.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core import ConfigError, DataError, Detections
from leanvision.core.io import atomic_write_bytes
from leanvision.data.augment.common import read_rgb
from leanvision.data.augment.compose import Compose, build_augmentation
from leanvision.data.augment.geometric import fit_to_size
from leanvision.data.augment.paste import ImagePool, negative_pool
from leanvision.data.formats import DetectionSet, read_detection

logger = logging.getLogger(__name__)

# Box colours (RGB) by class, cycled; chosen to stand out on pale stained backgrounds.
_PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (128, 128, 0))


def load_augment_steps(recipe_yaml: Path) -> list[dict[str, Any]]:
    """The augmentation steps of a recipe YAML.

    Accepts a training recipe (its `augment:` is the list of steps, or a mapping holding
    it under `steps:`, as in `configs/`), or a YAML file that is just the list.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(recipe_yaml).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=recipe_yaml) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {str(exc).splitlines()[0]}", path=recipe_yaml) from None
    if isinstance(data, Mapping):
        if "augment" not in data:
            raise ConfigError("no 'augment' list in this recipe", path=recipe_yaml)
        data = data["augment"]
        if isinstance(data, Mapping):
            data = data.get("steps", [])
    if not isinstance(data, list) or not all(isinstance(step, Mapping) for step in data):
        raise ConfigError("the augmentation must be a list of steps like {op: random_flip}", path=recipe_yaml)
    return [dict(step) for step in data]


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of the grid holding `n` cells: as square as possible."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def draw_boxes(image: np.ndarray, targets: Detections, classes: Sequence[str]) -> np.ndarray:
    """A copy of `image` (RGB) with each box outlined and named in its class colour."""
    import cv2

    out = image.copy()
    for (x1, y1, x2, y2), label in zip(targets.boxes.tolist(), targets.labels.tolist(), strict=True):
        colour = _PALETTE[label % len(_PALETTE)]
        top_left, bottom_right = (round(x1), round(y1)), (max(round(x2) - 1, round(x1)), max(round(y2) - 1, round(y1)))
        cv2.rectangle(out, top_left, bottom_right, colour, 2)
        name = classes[label] if 0 <= label < len(classes) else str(label)
        cv2.putText(out, name, (top_left[0], max(top_left[1] - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1,
                    cv2.LINE_AA)
    return out


def _caption(cell: np.ndarray, text: str) -> None:
    import cv2

    origin = (3, cell.shape[0] - 5)
    cv2.putText(cell, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(cell, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)


def _render_cells(dataset: DetectionSet, augment: Compose, *, n: int, seed: int, cell: int) -> list[np.ndarray]:
    """`n` augmented samples drawn as `cell` x `cell` RGB tiles; unreadable images skipped.

    Images are taken in a seeded random order (repeated if the set has fewer than `n`);
    slot k is augmented with the generator of (seed, k, index), so repeats differ.
    """
    order = np.random.default_rng(seed).permutation(len(dataset.images))
    bad: set[int] = set()
    cells: list[np.ndarray] = []
    position = 0
    while len(cells) < n:
        if len(bad) == len(order):
            raise DataError("none of the dataset's images can be read", path=dataset.image_root)
        index = int(order[position % len(order)])
        position += 1
        if index in bad:
            continue
        record = dataset.images[index]
        try:
            image = read_rgb(dataset.image_path(record))
        except DataError as exc:
            logger.warning("skipping unreadable image (%s)", exc)
            bad.add(index)
            continue
        image, targets = augment(image, record.targets, np.random.default_rng([seed, len(cells), index]))
        image, targets = fit_to_size(image, targets, cell, cell)
        tile = draw_boxes(image, targets, dataset.classes)
        _caption(tile, Path(record.file_name).name)
        cells.append(tile)
    return cells


def _tile(cells: Sequence[np.ndarray], rows: int, cols: int, cell: int) -> np.ndarray:
    grid = np.full((rows * cell, cols * cell, 3), 255, np.uint8)
    for k, tile in enumerate(cells):
        r, c = divmod(k, cols)
        grid[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = tile
    return grid


def preview_grid(
    dataset_dir: Path,
    steps: Sequence[Mapping[str, Any]],
    *,
    n: int = 16,
    out: Path,
    seed: int = 0,
    cell: int = 320,
    negatives: Path | None = None,
) -> Path:
    """Draw `n` augmented samples of a detection dataset with their boxes in a grid image.

    Args:
        dataset_dir: a detection dataset (COCO, VOC or YOLO layout).
        steps: the recipe's `augment:` list (see `load_augment_steps`).
        n: number of samples.
        out: image file to write (PNG; the suffix picks the format), written atomically.
        seed: same seed, same grid.
        cell: side in pixels of each sample's tile (samples are letterboxed into it).
        negatives: folder of negative images for `replace_background` (a recipe's
            `augment.negatives`); None uses the dataset's own images without boxes.

    Returns:
        `out`, an image of (rows * cell) x (cols * cell) pixels, rows x cols = `grid_shape(n)`.
    """
    import cv2

    if n < 1 or cell < 16:
        raise ConfigError(f"need n >= 1 and cell >= 16, got n={n}, cell={cell}")
    dataset = read_detection(Path(dataset_dir))
    if not dataset.images:
        raise DataError("the dataset has no images", path=dataset_dir)
    pool = negative_pool(dataset) if negatives is None else ImagePool.from_folder(negatives)
    augment = build_augmentation(steps, negatives=pool)
    rows, cols = grid_shape(n)
    grid = _tile(_render_cells(dataset, augment, n=n, seed=seed, cell=cell), rows, cols, cell)
    out = Path(out)
    try:
        ok, encoded = cv2.imencode(out.suffix or ".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    except cv2.error:
        ok = False
    if not ok:
        raise ConfigError(f"cannot write an image with suffix '{out.suffix}' (use .png)", path=out)
    atomic_write_bytes(out, encoded.tobytes())
    return out
