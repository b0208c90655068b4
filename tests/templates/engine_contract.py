"""Contract test template: every engine x precision gives torch's detections.

In the manner of kornia's BaseTester and NNCF's test_templates: a model family's test
module subclasses `EngineContractTests` (as `TestSomething`) and supplies three fixtures:

- `contract_variants`: {name: `ModelVariant`}, exported model directories (model file +
  `model_card.json`), e.g. the FP32 ONNX, its IR, an INT8 QDQ ONNX and an INT8 IR;
- `contract_reference`: a callable `(N, 3, H, W) normalised float32 batch -> list[Detections]`
  in model-input pixels, computed by the torch model (the independent reference);
- `contract_images`: a few HxWx3 uint8 RGB fixture images of varied sizes;

and lists its cases in `CASES` (variant name x backend x precision hint). Every case is
checked for detection agreement with the reference, sync/async agreement, the precision it
reports, and card-driven preprocessing.

Tolerances are per precision actually run (the engine's reported precision; INT8 for
quantized variants), see `TOLERANCES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from leanvision.core import Detections, Precision
from leanvision.core.boxes import box_iou
from leanvision.core.protocols import StagedPredictor
from leanvision.runtime import Backend, EngineOptions, PrecisionHint, load_predictor

Reference = Callable[[np.ndarray], list[Detections]]


@dataclass(frozen=True)
class Tolerance:
    """When an engine's detections count as the reference's.

    A reference and an engine detection match when they have the same label, IoU >=
    `min_iou` (or coordinates equal within 0.01 px) and scores within `score_atol`
    (one-to-one, best IoU first). Of the detections scoring at least threshold + `margin`
    (the threshold being the cut at max_detections when a list is full), on either side, at
    least a `min_match` fraction must be matched; the ones just above the threshold may
    fall on either side of it.
    """

    min_iou: float
    score_atol: float
    min_match: float
    margin: float


TOLERANCES = {
    # Same network, same decode: only float reassociation differs (observed: scores within
    # 1e-6, boxes within 1e-4 px). IoU 0.999 is ~0.01 px on a 32 px box.
    Precision.FP32: Tolerance(min_iou=0.999, score_atol=1e-4, min_match=1.0, margin=1e-4),
    # bf16 keeps 8 mantissa bits (~0.4% per operation): logits move by a few hundredths.
    Precision.BF16: Tolerance(min_iou=0.8, score_atol=0.05, min_match=0.95, margin=0.05),
    # INT8 moves scores by up to ~0.1-0.2 (observed on the tiny random RetinaNet: 90th
    # percentile 0.09, max 0.24) and may flip detections near the threshold; boxes stay on
    # the same object (IoU >= 0.5, COCO's AP50 criterion).
    Precision.INT8: Tolerance(min_iou=0.5, score_atol=0.15, min_match=0.9, margin=0.1),
}


@dataclass(frozen=True)
class ModelVariant:
    """An exported model directory and the precision of its weights (FP32 or INT8)."""

    model_dir: Path
    weights: Precision = Precision.FP32


@dataclass(frozen=True)
class EngineCase:
    """One engine run of one variant: `variant` names a key of `contract_variants`."""

    variant: str
    backend: Backend
    precision: PrecisionHint = PrecisionHint.FP32

    @property
    def id(self) -> str:
        return f"{self.variant}-{self.backend.value}-{self.precision.value}"


def greedy_match(ref: Detections, got: Detections, tol: Tolerance) -> list[tuple[int, int]]:
    """One-to-one (ref index, got index) pairs: same label, IoU >= min_iou, scores close."""
    if len(ref) == 0 or len(got) == 0:
        return []
    iou = box_iou(ref.boxes, got.boxes)
    # Boxes clipped flat at the image border have no area and so no IoU, even with
    # themselves (torchvision's RetinaNet keeps them): equal coordinates count as a match.
    same = np.abs(ref.boxes[:, None, :] - got.boxes[None, :, :]).max(axis=2) <= 0.01
    iou = np.where(same, 1.0, iou)
    ok = (ref.labels[:, None] == got.labels[None, :]) & (iou >= tol.min_iou)
    ok &= np.abs(ref.scores[:, None] - got.scores[None, :]) <= tol.score_atol
    pairs, used_r, used_g = [], set(), set()
    for flat in np.argsort(-np.where(ok, iou, -1.0), axis=None, kind="stable"):
        r, g = divmod(int(flat), len(got))
        if not ok[r, g]:
            break
        if r not in used_r and g not in used_g:
            pairs.append((r, g))
            used_r.add(r)
            used_g.add(g)
    return pairs


def confidence_floor(ref: Detections, got: Detections, threshold: float, max_detections: int | None) -> float:
    """Lowest score that must agree: the threshold, or, when a list was cut at
    `max_detections`, the score it was cut at (ranks near the cut may swap in or out)."""
    floor = threshold
    for dets in (ref, got):
        if max_detections is not None and len(dets) >= max_detections:
            floor = max(floor, float(dets.scores.min()))
    return floor


def agreement(
    ref: Sequence[Detections],
    got: Sequence[Detections],
    tol: Tolerance,
    *,
    threshold: float,
    max_detections: int | None = None,
) -> dict[str, tuple[float, int]]:
    """{"ref" | "got": (matched fraction, count)} over detections scoring at least
    `confidence_floor` + `tol.margin`, on the reference side and on the engine side."""
    counts = {"ref": [0, 0], "got": [0, 0]}
    for r, g in zip(ref, got, strict=True):
        pairs = greedy_match(r, g, tol)
        floor = confidence_floor(r, g, threshold, max_detections) + tol.margin
        for side, dets, matched in (("ref", r, {p[0] for p in pairs}), ("got", g, {p[1] for p in pairs})):
            confident = np.flatnonzero(dets.scores >= floor)
            counts[side][0] += len(confident)
            counts[side][1] += sum(int(i) in matched for i in confident)
    return {side: (hit / total if total else 1.0, total) for side, (total, hit) in counts.items()}


def to_image_pixels(dets: Sequence[Detections], prepared) -> list[Detections]:
    """Input-pixel detections mapped to each source image with the predictor's transforms."""
    return [
        Detections(t.invert_boxes(d.boxes), d.scores, d.labels).clip(size[1], size[0])
        for d, t, size in zip(dets, prepared.transforms, prepared.sizes, strict=True)
    ]


def expected_precision(case: EngineCase, bf16_capable: bool) -> Precision:
    if case.precision is PrecisionHint.BF16 and case.backend is Backend.OPENVINO and bf16_capable:
        return Precision.BF16
    return Precision.FP32


def cpu_has_bf16() -> bool:
    import openvino as ov

    from leanvision.runtime.engines.openvino import cpu_supports_bf16

    return cpu_supports_bf16(ov.Core())


class EngineContractTests:
    """Base of a model family's engine contract tests (see the module docstring)."""

    CASES: Sequence[EngineCase] = ()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "case" in metafunc.fixturenames:
            metafunc.parametrize("case", list(self.CASES), ids=[c.id for c in self.CASES])

    @pytest.fixture
    def predictor(self, case: EngineCase, contract_variants: dict[str, ModelVariant]):
        options = EngineOptions(precision=case.precision, num_requests=2)
        predictor = load_predictor(contract_variants[case.variant].model_dir, backend=case.backend, options=options)
        yield predictor
        predictor.engine.close()

    def tolerance(self, case: EngineCase, variant: ModelVariant, predictor) -> Tolerance:
        """The tolerance for what ran: INT8 for quantized weights, else the engine's precision.
        Override to tune a family's tolerances (say why in a comment)."""
        if variant.weights in (Precision.INT8, Precision.MIXED):
            return TOLERANCES[Precision.INT8]
        return TOLERANCES[predictor.engine.precision]

    def test_is_a_staged_predictor(self, predictor):
        assert isinstance(predictor, StagedPredictor)
        assert predictor.max_in_flight == predictor.engine.num_requests

    def test_reports_the_precision_it_runs(self, case, predictor):
        assert predictor.engine.precision is expected_precision(case, cpu_has_bf16())

    def test_detections_match_the_torch_reference(self, case, predictor, contract_variants, contract_reference, contract_images):
        prepared = predictor.preprocess(contract_images)
        expected = to_image_pixels(contract_reference(prepared.batch), prepared)
        got = predictor(contract_images)
        tol = self.tolerance(case, contract_variants[case.variant], predictor)
        options = predictor.options
        result = agreement(expected, got, tol, threshold=options.score_threshold, max_detections=options.max_detections)
        assert result["ref"][1] > 0, "the fixture gives no confident reference detection: the test would prove nothing"
        for side in ("ref", "got"):
            fraction, total = result[side]
            assert fraction >= tol.min_match, f"{case.id}: {side} side matched {fraction:.1%} of {total} ({tol})"

    def test_async_gives_the_sync_result(self, predictor, contract_images):
        sync = [predictor([image])[0] for image in contract_images]  # same batch shape as below
        results: dict[int, list[Detections]] = {}
        for i, image in enumerate(contract_images * 2):
            prepared = predictor.preprocess([image])
            predictor.submit(prepared, lambda raw, i=i, p=prepared: results.__setitem__(i, predictor.postprocess(raw, p)))
        predictor.wait_all()
        assert sorted(results) == list(range(2 * len(contract_images)))
        for i, dets in results.items():
            assert dets[0].equals(sync[i % len(contract_images)], atol=1e-4)

    def test_preprocess_follows_the_card(self, predictor):
        card = predictor.card.input
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (card.height, card.width, 3), dtype=np.uint8)
        prepared = predictor.preprocess([image])
        channels = (image[..., ::-1] if card.color == "BGR" else image).transpose(2, 0, 1)
        assert prepared.batch.shape == (1, 3, card.height, card.width)
        if card.dtype == "uint8":  # the model normalises in-graph
            np.testing.assert_array_equal(prepared.batch[0], channels)
            return
        mean, std = (np.asarray(v, np.float64)[:, None, None] for v in (card.mean, card.std))
        assert prepared.batch.dtype == np.float32
        np.testing.assert_allclose(prepared.batch[0], (channels - mean) / std, atol=1e-5)

