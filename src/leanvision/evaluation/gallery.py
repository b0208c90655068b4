"""A classifier's worst errors as a picture: the misclassified images it was most sure of.

S1 (retail products, long tail) looked at these by hand; `leanvision val` writes them as
`worst_errors.png` beside `metrics.json`. Two parts:

- `worst_errors`: which images, in which order (pure: logits and labels in, a list out).
  An image is misclassified when its top-1 class (the argmax of its logits, ties to the
  lower class index, as `evaluation.classification` ranks them) is not its label; its
  confidence is the softmax probability of that wrong class. Most confident first; equal
  confidences in the images' order.
- `write_error_gallery`: draws them, one tile each (the whole image, aspect kept, with
  "true: <name>" / "pred: <name> <p>%"), in rows of six, with matplotlib's object API.

Torch-free: it runs in the deployment install.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leanvision.core.classes import softmax
from leanvision.core.errors import DataError

GALLERY_NAME = "worst_errors.png"
MAX_TILES = 24
PER_ROW = 6
_THUMB_PX = 256  # long side an image is shrunk to before drawing (a tile is ~200 px)
_NAME_CHARS = 22  # longer class names are shortened in captions (metrics.json has them whole)


@dataclass(frozen=True)
class Misclassified:
    """One misclassified image.

    Attributes:
        index: its row in the scored logits (the images' order).
        true: its label.
        predicted: the top-1 class.
        confidence: softmax probability of `predicted`, in [0, 1].
    """

    index: int
    true: int
    predicted: int
    confidence: float


def worst_errors(logits: np.ndarray, labels: Sequence[int] | np.ndarray, *,
                 limit: int | None = None) -> list[Misclassified]:
    """The misclassified images of (N, C) `logits` against (N,) `labels`, most confident in
    the wrong class first, equal confidences by index; at most `limit` of them (None: all).

    Raises:
        DataError: shapes that disagree, scores that are not finite, labels outside [0, C).
    """
    scores = np.asarray(logits, np.float64)
    truth = np.asarray(labels)
    if scores.ndim != 2 or truth.ndim != 1 or len(scores) != len(truth):
        raise DataError(f"need (N, C) logits and (N,) labels, got {list(scores.shape)} and {list(truth.shape)}")
    if scores.shape[1] == 0:
        raise DataError("need at least one class score per image")
    if not np.isfinite(scores).all():
        raise DataError("class scores must be finite (got NaN or inf)")
    if len(truth) and (not np.issubdtype(truth.dtype, np.integer) or truth.min() < 0
                       or truth.max() >= scores.shape[1]):
        raise DataError(f"labels must be class indices in [0, {scores.shape[1]})")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if not len(truth):
        return []
    predicted = scores.argmax(axis=1)
    wrong = np.flatnonzero(predicted != truth)
    confidence = softmax(scores[wrong]).astype(np.float64)[np.arange(len(wrong)), predicted[wrong]]
    order = np.lexsort((wrong, -confidence))[:limit]
    return [Misclassified(int(wrong[i]), int(truth[wrong[i]]), int(predicted[wrong[i]]), float(confidence[i]))
            for i in order]


def _short(name: str) -> str:
    return name if len(name) <= _NAME_CHARS else name[:_NAME_CHARS - 1] + "\u2026"


def _thumbnail(path: Path) -> np.ndarray | None:
    """The image as RGB, its long side shrunk to at most `_THUMB_PX`; None if unreadable."""
    import cv2

    from leanvision.largeimage.readers.whole import read_rgb  # the one reading policy, torch-free

    try:
        rgb = read_rgb(path)
    except DataError:
        return None
    scale = _THUMB_PX / max(rgb.shape[:2])
    if scale < 1:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return rgb


def write_error_gallery(
    paths: Sequence[str | os.PathLike[str]],
    true_names: Sequence[str],
    predicted_names: Sequence[str],
    confidences: Sequence[float],
    out: str | os.PathLike[str],
    *,
    title: str = "",
    per_row: int = PER_ROW,
) -> Path | None:
    """Draw one tile per image, in the order given, `per_row` to a row, as a PNG at `out`
    (written atomically); return `out`, or None with nothing written when there are no images.

    Each tile is the whole image read from disk (aspect kept) under "true: <name>" and
    "pred: <name> <p>%" (p = confidence x 100); an image that can no longer be read is a
    blank tile saying so.

    Raises:
        DataError: the four sequences differ in length, or a confidence is outside [0, 1].
    """
    from matplotlib.figure import Figure  # object API: no pyplot global state, no GUI backend

    from leanvision.core.io import atomic_path

    lengths = {len(paths), len(true_names), len(predicted_names), len(confidences)}
    if len(lengths) != 1:
        raise DataError(f"gallery needs as many true names, predicted names and confidences as images, got "
                        f"{len(paths)} images, {len(true_names)}, {len(predicted_names)} and {len(confidences)}")
    if per_row < 1:
        raise ValueError(f"per_row must be >= 1, got {per_row}")
    if any(not 0 <= float(c) <= 1 for c in confidences):
        raise DataError("confidences must be probabilities in [0, 1]")
    if not paths:
        return None
    columns = min(per_row, len(paths))
    rows = math.ceil(len(paths) / columns)
    figure = Figure(figsize=(2.1 * columns, 2.5 * rows + (0.4 if title else 0)), dpi=100, layout="constrained")
    for k, (path, true, predicted, p) in enumerate(zip(paths, true_names, predicted_names, confidences,
                                                        strict=True)):
        axes = figure.add_subplot(rows, columns, k + 1)
        image = _thumbnail(Path(path))
        if image is None:
            axes.text(0.5, 0.5, "image unreadable", ha="center", va="center", fontsize=7, transform=axes.transAxes)
        else:
            axes.imshow(image, aspect="equal", interpolation="antialiased")
        axes.set_axis_off()
        axes.set_title(f"true: {_short(true)}\npred: {_short(predicted)} {100 * float(p):.1f}%", fontsize=7,
                       color="#8b0000")
    if title:
        figure.suptitle(title, fontsize=9)
    target = Path(out)
    with atomic_path(target) as tmp:
        figure.savefig(tmp, dpi=100)
    return target
