"""The labelled validation set every candidate model is scored on (mAP@0.5, pycocotools).

Images are preprocessed once by the deployment predictor and kept in memory when they fit
(`CACHE_BYTES`), so scoring a dozen candidates costs inference only; a larger set is
re-read for each evaluation. Raw outputs go through the same predictor's `postprocess`
(decode, NMS, mapping back to image pixels), so a candidate is scored exactly as it would
be deployed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from leanvision.compression.quantize.calibration import is_grayscale
from leanvision.core.detections import Detections
from leanvision.core.errors import DataError
from leanvision.core.protocols import Prepared
from leanvision.data.formats import read_detection
from leanvision.evaluation.detection import DetectionMetrics, evaluate_detections

logger = logging.getLogger(__name__)

CACHE_BYTES = 1 << 30  # preprocessed images kept in memory up to 1 GiB (S0: 200 x 800 px = 1.5 GB)
BATCH = 4

Run = Callable[[np.ndarray], Mapping[str, np.ndarray]]  # (N, 3, H, W) -> raw outputs


def _read_labelled(path: Path, class_names: Sequence[str]):
    try:
        dataset = read_detection(path)
    except DataError as exc:
        raise DataError(f"the validation set needs labels (a COCO, VOC or YOLO detection set): {exc.message}",
                        path=path) from None
    if tuple(dataset.classes) != tuple(class_names):
        raise DataError(f"validation classes {list(dataset.classes)} differ from the model's {list(class_names)}",
                        path=path)
    if not dataset.images:
        raise DataError("the validation set has no images", path=path)
    if dataset.num_objects == 0:
        raise DataError("the validation set has no labelled box: mAP@0.5 needs ground truth", path=path)
    for issue in dataset.issues:
        logger.warning("validation labels: %s (left out)", issue)
    return dataset


class ValidationSet:
    """A labelled detection set ready to score models.

    Args:
        source: the dataset directory.
        files: image files (readable ones only).
        ground_truth: per image, boxes in image pixels.
        image_sizes: per image, (width, height).
        class_names: label index -> name.
        prepare: list of files -> `Prepared` (the predictor's reader and preprocess).
        postprocess: (raw outputs, Prepared) -> list of Detections in image pixels.
    """

    def __init__(self, source: Path, files: Sequence[Path], ground_truth: Sequence[Detections],
                 image_sizes: Sequence[tuple[int, int]], class_names: Sequence[str], *,
                 prepare: Callable[[list[Path]], Prepared],
                 postprocess: Callable[[Mapping[str, np.ndarray], Prepared], list[Detections]]) -> None:
        self.source = source
        self.files = list(files)
        self.ground_truth = list(ground_truth)
        self.image_sizes = list(image_sizes)
        self.class_names = tuple(class_names)
        self._prepare = prepare
        self._postprocess = postprocess
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

    def predict(self, run: Run) -> list[Detections]:
        """Detections of every image by a model (`run`: batch -> raw outputs)."""
        detections: list[Detections] = []
        for start in range(0, len(self.files), BATCH):
            prepared = self._batch(start)
            detections.extend(self._postprocess(run(prepared.batch), prepared))
        return detections

    def evaluate(self, run: Run) -> DetectionMetrics:
        """COCO metrics of a model on this set (map50 is the figure budgets are in)."""
        return evaluate_detections(self.ground_truth, self.predict(run), image_sizes=self.image_sizes,
                                   class_names=self.class_names)


def load_validation_set(path: Path, class_names: Sequence[str], *, reader: Callable[[Path], np.ndarray],
                        preprocess: Callable[[list[np.ndarray]], Prepared],
                        postprocess: Callable[[Mapping[str, np.ndarray], Prepared], list[Detections]]) -> ValidationSet:
    """Read a labelled detection set and check every image decodes (unreadable ones are
    warned about and left out).

    Raises:
        DataError: no labels, no image, no box, classes differing from the model's, no
            readable image, or only grayscale images.
    """
    dataset = _read_labelled(path, class_names)
    files, truth, sizes = [], [], []
    gray = 0
    for record in dataset.images:
        file = dataset.image_path(record)
        try:
            image = reader(file)
        except DataError as exc:
            logger.warning("skipping validation image %s: %s", file, exc.message)
            continue
        if is_grayscale(file):
            gray += 1
            logger.warning("%s: grayscale image, converted to 3 equal channels as the predictor does", file)
        files.append(file)
        truth.append(record.targets)
        sizes.append((int(image.shape[1]), int(image.shape[0])))
    if not files:
        raise DataError("no readable image in the validation set", path=path)
    if gray == len(files):
        raise DataError(f"all {gray} validation images are grayscale but the model takes colour (RGB) input",
                        path=path)

    def prepare(batch_files: list[Path]) -> Prepared:
        return preprocess([reader(f) for f in batch_files])

    return ValidationSet(path, files, truth, sizes, class_names, prepare=prepare, postprocess=postprocess)
