"""Parity at export: torch and the exported model, run through `leanvision.runtime`, agree.

On the same images (deterministic synthetic ones at the input size, or the user's), each
engine is run at batch 1 and at batch N (the dynamic axis) and compared with torch on the
very batch the predictor prepared:

- raw outputs: the largest absolute difference between the exported graph's outputs and
  the torch module it was exported from;
- detections: the runtime's (numpy decode + NMS, or the graph's own for `--with-nms`)
  against torch's `model.detect` (torchvision's decode + NMS), in image pixels. A pair
  matches with the same label and IoU >= 0.99; agreement is the matched fraction of the
  detections scoring clearly above the threshold (see `ParityTolerance`), on both sides;
- counts (counting models): the runtime's count (sum of its density map over the image)
  against torch's `model.predict`, as |runtime - torch| / max(|torch|, 1).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.boxes import box_iou
from leanvision.core.detections import Detections
from leanvision.core.errors import DataError, LeanVisionError, ModelError
from leanvision.core.protocols import Prepared
from leanvision.data.tasks import torch_task
from leanvision.runtime import Backend, EngineOptions, PrecisionHint, load_predictor
from leanvision.runtime.preprocess import read_image

logger = logging.getLogger(__name__)

MAX_PARITY_IMAGES = 8
RawFn = Callable[[np.ndarray], dict[str, np.ndarray]]
DetectFn = Callable[[np.ndarray, Sequence[tuple[int, int]] | None], list[Any]]


@dataclasses.dataclass(frozen=True)
class ParityTolerance:
    """When an FP32 export counts as the torch model.

    Both sides compute in FP32 with the same weights; only the order of floating-point
    operations differs (kernel choice, fusion), which moves outputs by ~1e-6 relative.

    Attributes:
        raw_rtol, raw_atol: a raw output may differ by at most raw_atol + raw_rtol * max|torch
            output| (outputs span ~1e-2 to ~1e2: logits, deltas, pixel boxes). Measured on the
            slim RetinaNet at 256 px: ~2e-6 relative (9e-6 on logits reaching 5.2, ONNX
            Runtime and OpenVINO alike); 1e-4 leaves ~50x margin and is still far below what
            a wrong weight, layout or op does (>= 1e-2).
        min_iou: IoU at which two boxes are the same detection (the issue asks 0.99).
        min_agreement: matched fraction required on each side. 1.0 less a hair: FP32
            differences cannot move a confident detection, but an NMS pair whose IoU sits
            within ~1e-6 of the IoU threshold may flip.
        score_margin: detections within this of the score threshold (or of the score a full
            list was cut at) may fall on either side and are not counted.
        count_rtol: counting: largest |runtime count - torch count| / max(|torch count|, 1).
            A count sums thousands of cells whose FP32 differences (~1e-7 each) partly cancel.
    """

    raw_rtol: float = 1e-4
    raw_atol: float = 1e-4
    min_iou: float = 0.99
    min_agreement: float = 0.99
    score_margin: float = 1e-3
    count_rtol: float = 1e-4


FP32_PARITY = ParityTolerance()


@dataclasses.dataclass(frozen=True)
class ParityRun:
    """One engine at one batch size over all parity images.

    Attributes:
        backend: the runtime engine.
        batch: images per inference call.
        max_abs_diff: per output name, the largest |runtime - torch|.
        scale: per output name, max |torch output| (what raw_rtol is relative to).
        torch_detections, runtime_detections: confident detections on each side.
        matched_torch, matched_runtime: of those, how many found their counterpart.
        count_rel_diff: counting models: the largest relative count difference over the
            images (None for detection).
        top1_agreement: classifiers: the share of images whose top-1 class is the same on
            both sides (reported; the logits themselves are held to the raw tolerance).
    """

    backend: str
    batch: int
    max_abs_diff: dict[str, float]
    scale: dict[str, float]
    torch_detections: int = 0
    runtime_detections: int = 0
    matched_torch: int = 0
    matched_runtime: int = 0
    count_rel_diff: float | None = None
    top1_agreement: float | None = None

    @property
    def agreement(self) -> float:
        fractions = [m / t for m, t in ((self.matched_torch, self.torch_detections),
                                        (self.matched_runtime, self.runtime_detections)) if t]
        return min(fractions, default=1.0)

    def raw_ok(self, tol: ParityTolerance) -> bool:
        return all(d <= tol.raw_atol + tol.raw_rtol * self.scale[k] for k, d in self.max_abs_diff.items())

    def count_ok(self, tol: ParityTolerance) -> bool:
        return self.count_rel_diff is None or self.count_rel_diff <= tol.count_rtol

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "detection_agreement": self.agreement}


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """Every run of the parity check, the tolerance, and the verdict."""

    images: int
    source: str
    tolerance: ParityTolerance
    runs: tuple[ParityRun, ...]

    @property
    def max_abs_diff(self) -> float:
        return max((d for run in self.runs for d in run.max_abs_diff.values()), default=0.0)

    @property
    def detection_agreement(self) -> float:
        return min((run.agreement for run in self.runs), default=1.0)

    @property
    def detections(self) -> int:
        """Confident torch detections per run (the same in every run)."""
        return max((run.torch_detections for run in self.runs), default=0)

    @property
    def counting(self) -> bool:
        """The runs compared counts (a counting model) rather than detections."""
        return any(run.count_rel_diff is not None for run in self.runs)

    @property
    def count_rel_diff(self) -> float:
        """The largest relative count difference of any run (0.0 for detection)."""
        return max((run.count_rel_diff or 0.0 for run in self.runs), default=0.0)

    @property
    def passed(self) -> bool:
        tol = self.tolerance
        return all(run.raw_ok(tol) and run.agreement >= tol.min_agreement and run.count_ok(tol) for run in self.runs)

    def metrics(self) -> dict[str, float]:
        """Figures for the card's `metrics`."""
        if self.classifying:
            return {"parity_max_abs_diff": self.max_abs_diff, "parity_top1_agreement": self.top1_agreement,
                    "parity_images": float(self.images)}
        if self.counting:
            return {"parity_max_abs_diff": self.max_abs_diff, "parity_count_rel_diff": self.count_rel_diff,
                    "parity_images": float(self.images)}
        return {"parity_max_abs_diff": self.max_abs_diff, "parity_detection_agreement": self.detection_agreement,
                "parity_detections": float(self.detections), "parity_images": float(self.images)}

    @property
    def classifying(self) -> bool:
        """The runs compared top-1 classes (a classifier)."""
        return any(run.top1_agreement is not None for run in self.runs)

    @property
    def top1_agreement(self) -> float:
        return min((run.top1_agreement for run in self.runs if run.top1_agreement is not None), default=1.0)

    def summary(self) -> str:
        """One line: the figures, per engine and batch size."""
        if self.classifying:
            runs = ", ".join(f"{r.backend} batch {r.batch}: max|diff| {max(r.max_abs_diff.values()):.2e}, "
                             f"top-1 agreement {r.top1_agreement:.3f}" for r in self.runs)
            return f"parity on {self.images} {self.source} images (logits): {runs}"
        if self.counting:
            runs = ", ".join(f"{r.backend} batch {r.batch}: max|diff| {max(r.max_abs_diff.values()):.2e}, "
                             f"count rel. diff {r.count_rel_diff:.2e}" for r in self.runs)
            return f"parity on {self.images} {self.source} images (density maps and counts): {runs}"
        runs = ", ".join(f"{r.backend} batch {r.batch}: max|diff| {max(r.max_abs_diff.values()):.2e}, "
                         f"agreement {r.agreement:.3f}" for r in self.runs)
        return (f"parity on {self.images} {self.source} images ({self.detections} confident torch detections): "
                f"{runs}")

    def to_dict(self) -> dict[str, Any]:
        if self.classifying:
            task: dict[str, Any] = {"top1_agreement": self.top1_agreement}
        elif self.counting:
            task = {"count_rel_diff": self.count_rel_diff}
        else:
            task = {"detection_agreement": self.detection_agreement, "detections": self.detections}
        return {"images": self.images, "source": self.source, "passed": self.passed,
                "max_abs_diff": self.max_abs_diff, **task, "tolerance": dataclasses.asdict(self.tolerance),
                "runs": [run.to_dict() for run in self.runs]}


# -- fixture images ---------------------------------------------------------------------


def synthetic_images(count: int, input_hw: tuple[int, int], *, seed: int = 0) -> list[np.ndarray]:
    """`count` (H, W, 3) uint8 RGB images at the input size: noise plus filled shapes.

    Deterministic for a seed. Rectangles and ellipses of 1/16 to 1/3 of the side, bright
    on a darker textured background, give any detector edges and blobs to respond to.
    """
    import cv2

    rng = np.random.default_rng(seed)
    height, width = input_hw
    images = []
    for _ in range(count):
        image = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
        for shape in range(6):
            w, h = (int(rng.integers(max(2, s // 16), max(3, s // 3))) for s in (width, height))
            x, y = int(rng.integers(0, max(1, width - w))), int(rng.integers(0, max(1, height - h)))
            color = tuple(int(c) for c in rng.integers(120, 256, 3))
            if shape % 2:
                cv2.ellipse(image, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, color, -1)
            else:
                cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), color, -1)
        images.append(image)
    return images


def load_parity_images(directory: Path, *, limit: int = MAX_PARITY_IMAGES) -> list[np.ndarray]:
    """Up to `limit` RGB images from `directory` (sorted by name); unreadable ones are skipped.

    Raises:
        DataError: the directory is missing or holds no readable image.
    """
    from leanvision.data.images import IMAGE_SUFFIXES

    if not directory.is_dir():
        raise DataError("parity image directory not found", path=directory)
    images = []
    for path in sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            images.append(read_image(path, len(images)))
        except DataError as exc:
            logger.warning("%s (skipped)", exc)
        if len(images) == limit:
            break
    if not images:
        raise DataError("no readable image for the parity check", path=directory)
    return images


# -- comparison -------------------------------------------------------------------------


def _matches(ref: Detections, got: Detections, min_iou: float) -> list[tuple[int, int]]:
    """One-to-one (ref, got) pairs with the same label and IoU >= min_iou, best IoU first."""
    if len(ref) == 0 or len(got) == 0:
        return []
    iou = box_iou(ref.boxes, got.boxes)
    # A box clipped flat at the border has no area, hence no IoU even with itself.
    same = np.abs(ref.boxes[:, None, :] - got.boxes[None, :, :]).max(axis=2) <= 1e-2
    iou = np.where(same, 1.0, iou)
    ok = (ref.labels[:, None] == got.labels[None, :]) & (iou >= min_iou)
    pairs, used_ref, used_got = [], set(), set()
    for flat in np.argsort(-np.where(ok, iou, -1.0), axis=None, kind="stable"):
        r, g = divmod(int(flat), len(got))
        if not ok[r, g]:
            break
        if r not in used_ref and g not in used_got:
            pairs.append((r, g))
            used_ref.add(r)
            used_got.add(g)
    return pairs


def _floor(ref: Detections, got: Detections, threshold: float, max_detections: int) -> float:
    """The lowest score that must agree: the threshold, or the score a full list was cut at."""
    floor = threshold
    for dets in (ref, got):
        if len(dets) >= max_detections and len(dets):
            floor = max(floor, float(dets.scores.min()))
    return floor


def detection_counts(
    ref: Sequence[Detections], got: Sequence[Detections], tol: ParityTolerance, *,
    threshold: float, max_detections: int,
) -> tuple[int, int, int, int]:
    """(torch confident, runtime confident, torch matched, runtime matched) over all images."""
    totals = [0, 0, 0, 0]
    for r, g in zip(ref, got, strict=True):
        pairs = _matches(r, g, tol.min_iou)
        floor = _floor(r, g, threshold, max_detections) + tol.score_margin
        for side, dets, matched in ((0, r, {p[0] for p in pairs}), (1, g, {p[1] for p in pairs})):
            confident = np.flatnonzero(dets.scores >= floor)
            totals[side] += len(confident)
            totals[side + 2] += sum(int(i) in matched for i in confident)
    return totals[0], totals[1], totals[2], totals[3]


@dataclasses.dataclass(frozen=True)
class TorchReference:
    """The torch side: the exported module's raw outputs and the model's own results.

    Attributes:
        raw: (N, 3, H, W) normalised batch -> {output name: array}, the module that was exported.
        detect: the same batch (and each image's content size) -> the model's results in
            input pixels (a detector's `detect`: torch decode + NMS; a counter's `predict`).
        task: the model's task: how results map to image pixels and are compared
            (`export.tasks`, through `data.tasks.TORCH_TASKS`).
    """

    raw: RawFn
    detect: DetectFn
    task: str


def task_pieces(task: str) -> Any:
    """The export pieces of `task` (`export.tasks`, named by `data.tasks.TORCH_TASKS`)."""
    return torch_task(task, doing="exported").load("export")()


def torch_reference(
    exported: Any, output_names: Sequence[str], model: Any, spec: Any, *, task: str,
    compare: Sequence[str] | None = None,
) -> TorchReference:
    """The torch side for an exported `exported` module and the `model` it wraps.

    Args:
        exported: the module that was exported (the body, or the body with NMS), eval mode.
        output_names: names of its outputs, in order.
        model: the model; its task's reference result (`detect`, `predict`).
        spec: the card's `PostprocessSpec` (the thresholds the runtime applies).
        task: the model's task.
        compare: the outputs whose raw values are compared (default all). With NMS in the
            graph only `scores`: sorted best first they do not depend on how ties were
            ordered, while boxes and labels of tied slots may swap (the detection agreement
            checks those).
    """
    import torch

    @torch.no_grad()
    def raw(batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = exported(torch.from_numpy(np.ascontiguousarray(batch)))
        outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
        named = dict(zip(output_names, outputs, strict=True))
        return {name: named[name].numpy() for name in (compare or output_names)}

    return TorchReference(raw, task_pieces(task).torch_results(model, spec), task)


@dataclasses.dataclass(frozen=True)
class _Expected:
    """The torch side computed once for all images: raw outputs and image-pixel results
    (detections, or density maps for a counting model)."""

    prepared: Prepared
    raw: dict[str, np.ndarray]
    results: list[Any]


def _expected(predictor: Any, reference: TorchReference, images: list[np.ndarray]) -> _Expected:
    # Preprocessing is per image and the same for every engine (the card drives it), so one
    # torch pass over all images serves every engine and batch size.
    prepared = predictor.preprocess(images)
    # Boxes clip to each image's content, not the padding of a letterboxed or scaled input
    # (torchvision's `image_sizes`; the runtime does the same).
    found = reference.detect(prepared.batch, [t.resized_hw for t in prepared.transforms])
    results = task_pieces(reference.task).to_image(found, prepared, predictor.card)
    return _Expected(prepared, reference.raw(prepared.batch), results)


def _slice(prepared: Prepared, start: int, stop: int) -> Prepared:
    return Prepared(prepared.batch[start:stop], prepared.sizes[start:stop], prepared.transforms[start:stop])


def _run(predictor: Any, expected: _Expected, batch: int, tol: ParityTolerance) -> ParityRun:
    diff = dict.fromkeys(expected.raw, 0.0)
    scale = {name: float(np.abs(value).max(initial=0.0)) for name, value in expected.raw.items()}
    got = []
    for start in range(0, len(expected.results), batch):
        prepared = _slice(expected.prepared, start, start + batch)
        raw = predictor.engine.infer(prepared.batch)
        for name, value in expected.raw.items():
            delta = np.abs(np.asarray(raw[name], np.float64) - value[start : start + batch].astype(np.float64))
            diff[name] = max(diff[name], float(delta.max(initial=0.0)))
        got += predictor.postprocess(raw, prepared)
    compared = task_pieces(predictor.card.task).compare(expected.results, got, predictor, tol)
    return ParityRun(predictor.engine.backend.value, batch, diff, scale, **compared)


def check_parity(
    model_dir: Path,
    reference: TorchReference,
    images: list[np.ndarray],
    *,
    backends: Sequence[Backend],
    source: str,
    tolerance: ParityTolerance = FP32_PARITY,
) -> ParityReport:
    """Compare an exported model directory with torch on `images`, batch 1 and batch len(images).

    Args:
        model_dir: model file + `model_card.json`, as `runtime.load_predictor` reads it.
        reference: the torch side.
        images: HxWx3 uint8 RGB images.
        backends: the engines to run (ONNX Runtime, OpenVINO).
        source: where the images came from, for the report ("synthetic" or a directory).
        tolerance: see `ParityTolerance`.
    """
    batches = sorted({1, len(images)})
    runs: list[ParityRun] = []
    expected = None
    for backend in backends:
        options = EngineOptions(precision=PrecisionHint.FP32)
        try:
            predictor = load_predictor(model_dir, backend=backend, options=options)
        except LeanVisionError as exc:
            raise ModelError(f"the exported model does not load on {backend.value}: {exc.message}") from exc
        with predictor:
            expected = expected or _expected(predictor, reference, images)
            runs += [_run(predictor, expected, batch, tolerance) for batch in batches]
    return ParityReport(len(images), source, tolerance, tuple(runs))
