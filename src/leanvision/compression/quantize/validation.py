"""The labelled validation set every candidate model is scored on, and the metric it uses.

Detection models are scored by mAP@0.5 (pycocotools), counting models by MAE (objects per
image). `Metric.drop` expresses how much worse a candidate is than FP32 in the unit of the
accuracy budget: points (0-100) of mAP@0.5, or the rise of MAE in objects per image.

Images are preprocessed once by the deployment predictor and kept in memory when they fit
(`CACHE_BYTES`), so scoring a dozen candidates costs inference only; a larger set is
re-read for each evaluation. Raw outputs go through the same predictor's `postprocess`
(decode and NMS, or the density map's sum, mapped back to image pixels), so a candidate is
scored exactly as it would be deployed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.compression.quantize.calibration import is_grayscale
from leanvision.core.card import ModelCard
from leanvision.core.errors import DataError, plural
from leanvision.core.protocols import Prepared
from leanvision.data.labelled import load_labelled_set

logger = logging.getLogger(__name__)

CACHE_BYTES = 1 << 30  # preprocessed images kept in memory up to 1 GiB (S0: 200 x 800 px = 1.5 GB)
BATCH = 4

Run = Callable[[np.ndarray], Mapping[str, np.ndarray]]  # (N, 3, H, W) -> raw outputs
Postprocess = Callable[[Mapping[str, np.ndarray], Prepared], list[Any]]


@dataclasses.dataclass(frozen=True)
class Metric:
    """The figure candidates are compared by.

    Attributes:
        key: its name in reports and cards ("map50", "mae").
        label: its name for people ("mAP@0.5", "MAE").
        higher_is_better: mAP yes, MAE no.
        unit: the unit of a drop (and of `--max-drop`).
    """

    key: str
    label: str
    higher_is_better: bool
    unit: str

    def drop(self, reference: float, value: float) -> float:
        """How much worse `value` is than `reference`, in `unit` (negative: better)."""
        return 100.0 * (reference - value) if self.higher_is_better else value - reference

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MAP50 = Metric("map50", "mAP@0.5", True, "points")
MAE = Metric("mae", "MAE", False, "objects per image")
TOP1 = Metric("top1", "top-1", True, "points")
METRICS = {m.key: m for m in (MAP50, MAE, TOP1)}  # by the headline figure of a labelled set


class ValidationSet:
    """A labelled set ready to score models.

    Args:
        source: the dataset directory.
        files: image files (readable ones only).
        skipped: (file, reason) of the images left out because they do not decode.
        metric: what `score` returns.
        objects: labelled objects in the set (boxes or points), for the report.
        prepare: list of files -> `Prepared` (the predictor's reader and preprocess).
        postprocess: (raw outputs, Prepared) -> predictions in image pixels.
        scorer: all predictions, in file order -> metrics by name (the evaluation
            package's `DetectionScorer` or `CountingScorer`), `metric.key` among them.
    """

    def __init__(self, source: Path, files: Sequence[Path], metric: Metric, objects: int, *,
                 prepare: Callable[[list[Path]], Prepared], postprocess: Postprocess,
                 scorer: Callable[[list[Any]], Mapping[str, float]],
                 skipped: Sequence[tuple[Path, str]] = ()) -> None:
        self.source = source
        self.skipped = list(skipped)
        self.files = list(files)
        self.metric = metric
        self.objects = objects
        self._prepare = prepare
        self._postprocess = postprocess
        self._scorer = scorer
        self._cache: dict[int, Prepared] = {}
        self._cache_ok = True

    def __len__(self) -> int:
        return len(self.files)

    def _batch(self, start: int) -> Prepared:
        if start in self._cache:
            return self._cache[start]
        prepared = self._prepare(self.files[start: start + BATCH])
        if self._cache_ok:
            used = sum(p.batch.nbytes for p in self._cache.values()) + prepared.batch.nbytes
            self._cache_ok = used <= CACHE_BYTES
            if self._cache_ok:
                self._cache[start] = prepared
            else:
                self._cache.clear()
        return prepared

    def first_batch(self) -> np.ndarray:
        """The first image as a (1, 3, H, W) model input (the throughput benchmark's input)."""
        return self._batch(0).batch[:1]

    def predict(self, run: Run) -> list[Any]:
        """Predictions for every image by a model (`run`: batch -> raw outputs)."""
        predictions: list[Any] = []
        for start in range(0, len(self.files), BATCH):
            prepared = self._batch(start)
            predictions.extend(self._postprocess(run(prepared.batch), prepared))
        return predictions

    def score(self, run: Run) -> float:
        """The metric of a model on this set (what budgets are measured in)."""
        return self._scorer(self.predict(run))[self.metric.key]


@dataclasses.dataclass(frozen=True)
class _Readable:
    files: list[Path]
    truth: list[Any]
    sizes: list[tuple[int, int]]
    skipped: list[tuple[Path, str]]


def _readable(path: Path, files: Sequence[Path], truth: Sequence[Any],
              reader: Callable[[Path], np.ndarray]) -> _Readable:
    """The images that decode (others warned about and left out), checked for colour."""
    kept = _Readable([], [], [], [])
    gray = 0
    for file, target in zip(files, truth, strict=True):
        try:
            image = reader(file)
        except DataError as exc:
            logger.warning("skipping validation image %s: %s", file, exc.message)
            kept.skipped.append((file, exc.message))
            continue
        if is_grayscale(file):
            gray += 1
            logger.warning("%s: grayscale image, converted to 3 equal channels as the predictor does", file)
        kept.files.append(file)
        kept.truth.append(target)
        kept.sizes.append((int(image.shape[1]), int(image.shape[0])))
    if not kept.files:
        raise DataError(f"no readable image in the validation set ({plural(len(kept.skipped), 'unreadable file')})",
                        path=path)
    if gray == len(kept.files):
        raise DataError(f"all {gray} validation images are grayscale but the model takes colour (RGB) input",
                        path=path)
    return kept


def load_validation_set(path: Path, card: ModelCard, *, reader: Callable[[Path], np.ndarray],
                        preprocess: Callable[[list[np.ndarray]], Prepared],
                        postprocess: Postprocess) -> ValidationSet:
    """Read a labelled set of the card's task (`data.labelled`) and check every image decodes.

    Raises:
        DataError: no labels, no image, no box, classes differing from the model's, no
            readable image, or only grayscale images.
        ConfigError: a task quantization cannot score.
    """
    labelled = load_labelled_set(path, card)
    for issue in labelled.issues:
        logger.warning("validation labels: %s (left out)", issue)
    data = _readable(path, labelled.files, labelled.truth, reader)

    def prepare(batch_files: list[Path]) -> Prepared:
        return preprocess([reader(f) for f in batch_files])

    return ValidationSet(path, data.files, METRICS[labelled.metric], labelled.objects, prepare=prepare,
                         postprocess=postprocess, scorer=labelled.make_scorer(data.truth, data.sizes),
                         skipped=data.skipped)
