"""A deterministic numpy "detector" of bright blobs, and images of bright blobs, so that the
pipeline is tested without a trained model.

`BlobPredictor` is a `StagedPredictor`: preprocess copies the tiles into an NCHW batch,
"inference" (on a thread pool, `requests` at a time, optionally slowed by `delay`) thresholds
the channel mean, post-processing finds connected components (OpenCV) and scores each by its
area, so a blob cut by a tile edge scores lower than the whole blob.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from leanvision.core import (
    AnchorSpec,
    BoxCoderSpec,
    Detections,
    InputSpec,
    ModelCard,
    Prepared,
    Task,
)

THRESHOLD = 128  # channel mean above which a pixel belongs to a blob
FULL_AREA = 400.0  # input pixels at which a blob scores the maximum


def blob_card(input_hw: tuple[int, int]) -> ModelCard:
    return ModelCard(
        name="fake_blobs", task=Task.DETECT, class_names=("blob",),
        input=InputSpec(height=input_hw[0], width=input_hw[1]),
        anchors=AnchorSpec(sizes=((16.0,),), aspect_ratios=((1.0,),), strides=(8,)), box_coder=BoxCoderSpec(),
    )


def detect_blobs(mask: np.ndarray) -> Detections:
    """Connected components of an (H, W) bool mask as boxes (xyxy, input pixels)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    stats = stats[1:count]
    boxes = np.stack([stats[:, 0], stats[:, 1], stats[:, 0] + stats[:, 2], stats[:, 1] + stats[:, 3]], axis=1)
    scores = 0.5 + 0.45 * np.minimum(1.0, stats[:, 4] / FULL_AREA)
    return Detections(boxes.astype(np.float32), scores, np.zeros(len(stats), np.int64))


class BlobPredictor:
    """A StagedPredictor: tiles -> bright-blob boxes in tile-input pixels."""

    def __init__(self, card: ModelCard, *, requests: int = 2, delay: float = 0.0) -> None:
        self.card = card
        self.delay = delay
        self._requests = requests
        self._slots = threading.BoundedSemaphore(requests)
        self._pool = ThreadPoolExecutor(requests, thread_name_prefix="fake-infer")
        self._futures: list[Future] = []
        self.batch_sizes: list[int] = []

    @property
    def max_in_flight(self) -> int:
        return self._requests

    def preprocess(self, images: Sequence[np.ndarray], *, at_input_scale: bool = False) -> Prepared:
        for image in images:
            if image.shape != (self.card.input.height, self.card.input.width, 3):
                raise ValueError(f"tile of shape {image.shape} for a {self.card.input} model")
        batch = np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))
        return Prepared(batch, tuple(im.shape[:2] for im in images), ())

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        if self.delay:
            time.sleep(self.delay)
        return {"mask": batch.mean(axis=1) > THRESHOLD}

    def submit(self, prepared: Prepared, on_done: Callable) -> None:
        self._slots.acquire()  # back-pressure, like the engines: block while all are busy
        self.batch_sizes.append(len(prepared.batch))

        def run() -> None:
            try:
                on_done(self.infer(prepared.batch))
            finally:
                self._slots.release()

        self._futures.append(self._pool.submit(run))

    def wait_all(self) -> None:
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()

    def postprocess(self, raw: dict[str, np.ndarray], prepared: Prepared) -> list[Detections]:
        return [detect_blobs(mask) for mask in raw["mask"]]

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        prepared = self.preprocess(images)
        return self.postprocess(self.infer(prepared.batch), prepared)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class PlainBlobPredictor:
    """The same detector as a plain Predictor: `card` and `__call__` only."""

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self._inner = BlobPredictor(card, requests=1)

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return self._inner(images)


@dataclass(frozen=True)
class BlobFactory:
    """A picklable predictor factory (what the Ray engine and the CLI pass around)."""

    input_hw: tuple[int, int]
    requests: int = 2
    delay: float = 0.0

    def __call__(self) -> BlobPredictor:
        return BlobPredictor(blob_card(self.input_hw), requests=self.requests, delay=self.delay)


def blob_image(size: tuple[int, int], boxes: np.ndarray, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 RGB: dark noise with a bright rectangle per (N, 4) xyxy box."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
    for x1, y1, x2, y2 in np.asarray(boxes, np.int64):
        image[y1:y2, x1:x2] = rng.integers(200, 256, 3, dtype=np.uint8)
    return image


def random_boxes(size: tuple[int, int], count: int, seed: int = 0, side: tuple[int, int] = (16, 40)) -> np.ndarray:
    """(count, 4) xyxy boxes inside the image, apart from each other (no two touch)."""
    rng = np.random.default_rng(seed)
    boxes: list[np.ndarray] = []
    while len(boxes) < count:
        w, h = rng.integers(*side, 2)
        x, y = rng.integers(4, size[0] - w - 4), rng.integers(4, size[1] - h - 4)
        box = np.array([x, y, x + w, y + h])
        if all(box[0] > b[2] + 12 or b[0] > box[2] + 12 or box[1] > b[3] + 12 or b[1] > box[3] + 12 for b in boxes):
            boxes.append(box)
    return np.array(boxes, np.int64).reshape(-1, 4)


def write_image(path: Path, image: np.ndarray) -> Path:
    """JPEG (quality 95) or tiled TIFF (64 px tiles) by suffix, or anything cv2 writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, image, tile=(64, 64), photometric="rgb")
    else:
        assert cv2.imwrite(str(path), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


@dataclass(frozen=True)
class BrokenFactory:
    """A factory whose model cannot be loaded, as `load_predictor` on a bad model directory."""

    def __call__(self) -> BlobPredictor:
        from leanvision.core import ModelError

        raise ModelError("model file is empty", path="/models/broken/model.xml")
