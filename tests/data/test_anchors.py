"""`data anchors`: anchor coverage of a set's boxes, and anchors fitted to them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from leanvision.core import Detections
from leanvision.data.anchors import (
    anchor_shapes,
    box_shapes,
    covered,
    fit_anchors,
    fit_ratios,
    shape_iou,
)
from leanvision.data.formats import DetectionSet, Format, ImageRecord, write_detection
from leanvision.models.tasks.detect.retinanet import DEFAULT_ANCHOR_SIZES, DEFAULT_ASPECT_RATIOS
from tests.conftest import write_image
from tests.helpers import run_cli

RATIOS = DEFAULT_ASPECT_RATIOS[0]


def test_shape_iou_by_hand():
    boxes = np.array([[10.0, 10.0], [10.0, 20.0]])
    anchors = np.array([[20.0, 20.0], [20.0, 10.0]])
    assert shape_iou(boxes, anchors) == pytest.approx(np.array([[100 / 400, 100 / 200], [200 / 400, 100 / 300]]))


def test_anchor_shapes_are_torchvisions():
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    generator = AnchorGenerator(DEFAULT_ANCHOR_SIZES, (RATIOS,) * 5)
    expected = np.concatenate([
        (lambda a: np.stack([a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]], 1))(
            generator.generate_anchors(sizes, RATIOS).numpy())
        for sizes in DEFAULT_ANCHOR_SIZES
    ])
    # torchvision orders ratio-major within a level; the set of shapes is what matters here.
    got = anchor_shapes(DEFAULT_ANCHOR_SIZES, RATIOS)
    assert sorted(map(tuple, got)) == sorted(map(tuple, expected.astype(np.float64)))


def test_kmeans_ratios_find_the_shapes_present():
    rng = np.random.default_rng(0)
    ratios = rng.choice([0.5, 1.0, 3.0], 600)
    side = rng.uniform(20, 60, 600)
    boxes = np.stack([side / np.sqrt(ratios), side * np.sqrt(ratios)], 1) * rng.uniform(0.97, 1.03, (600, 2))
    assert fit_ratios(boxes) == pytest.approx((0.5, 1.0, 3.0), rel=0.05)


def _set(sides_by_class: dict[int, list[float]]) -> DetectionSet:
    records = []
    for i, (label, sides) in enumerate(sides_by_class.items()):
        boxes = np.array([[5, 5, 5 + s, 5 + s] for s in sides], np.float32)
        records.append(ImageRecord(f"{i}.png", 400, 400, Detections.from_boxes(boxes, [label] * len(sides)), i + 1))
    return DetectionSet(("platelet", "wbc"), records, None)


def test_tiny_boxes_no_default_anchor_reaches_are_covered_once_fitted():
    """S0's case: 24 px platelets at the 0.5 training scale are 12 px, against 32 px anchors."""
    dataset = _set({0: [22.0, 24.0, 26.0, 28.0] * 5, 1: [140.0, 150.0, 160.0] * 2})
    boxes, labels = box_shapes(dataset, scale=0.5)
    assert boxes[:, 0].min() == pytest.approx(11.0)
    fitted = fit_anchors(boxes, labels, ("platelet", "wbc"), sizes=DEFAULT_ANCHOR_SIZES, ratios=RATIOS)
    assert fitted.per_class["platelet"]["before"] == 0.0 and fitted.per_class["platelet"]["after"] == 1.0
    assert fitted.per_class["wbc"]["after"] == 1.0 and fitted.coverage_after == 1.0
    assert fitted.factor < 1.0 and min(min(level) for level in fitted.sizes) <= 16.0
    assert covered(boxes, anchor_shapes(fitted.sizes, fitted.ratios), 0.5).all()
    overrides = fitted.overrides()
    assert len(overrides["anchor_sizes"]) == 5 and len(overrides["aspect_ratios"]) == 5


def test_boxes_the_defaults_cover_keep_the_default_sizes():
    dataset = _set({0: [32.0, 40.0, 50.0, 64.0, 80.0, 100.0], 1: [128.0, 200.0]})
    boxes, labels = box_shapes(dataset)
    fitted = fit_anchors(boxes, labels, ("platelet", "wbc"), sizes=DEFAULT_ANCHOR_SIZES, ratios=RATIOS)
    assert fitted.coverage_before == 1.0 and fitted.factor == 1.0


def test_no_boxes_is_refused():
    with pytest.raises(ValueError, match="no boxes"):
        fit_anchors(np.zeros((0, 2)), np.zeros(0, np.int64), (), sizes=DEFAULT_ANCHOR_SIZES, ratios=RATIOS)


def test_cli_prints_coverage_per_class_and_the_overrides(tiny_coco, tmp_path):
    code, stdout, stderr = run_cli(["data", "anchors", str(tiny_coco), "--recipe", "s0_cervical_retinanet",
                                    "--json", str(tmp_path / "a.json")])
    assert code == 0, stderr
    assert "cell: 2 boxes" in stdout and "debris: 2 boxes" in stdout and "anchor_sizes:" in stdout and "&id" not in stdout
    result = json.loads((tmp_path / "a.json").read_text())
    assert set(result["per_class"]) == {"cell", "debris"} and len(result["overrides"]["anchor_sizes"]) == 5


def test_cli_refuses_a_set_without_boxes_in_one_line(tmp_path):
    root = tmp_path / "empty"
    write_image(root / "images" / "a.jpg", 32, 32)
    write_detection(DetectionSet(("cell",), [ImageRecord("a.jpg", 32, 32, Detections.empty(), 1)], root / "images"),
                    root, Format.COCO, copy_images=False)
    code, _, stderr = run_cli(["data", "anchors", str(root)])
    assert code == 2 and "no boxes" in stderr and stderr.strip().count("\n") == 0
