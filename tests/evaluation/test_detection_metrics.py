"""COCO mAP through pycocotools, checked against hand-computed 101-point interpolated AP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from leanvision.core import DataError, Detections
from leanvision.evaluation.detection import evaluate_detections, plot_pr_curve

SIZES = [(100, 100), (100, 100)]
G1, G2, G3 = [10, 10, 30, 30], [50, 50, 80, 80], [5, 60, 25, 90]
FAR = [[60, 0, 70, 8], [0, 90, 8, 99]]  # no overlap with any ground truth


def _gt(*boxes) -> Detections:
    return Detections.from_boxes(np.array(boxes, np.float32).reshape(-1, 4), [0] * len(boxes))


def _pred(boxes, scores, labels=None) -> Detections:
    labels = [0] * len(scores) if labels is None else labels
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, labels)


def _two_images():
    """3 GT; ranked detections TP 0.9, FP 0.8 (image 1), TP 0.7, FP 0.6 (image 2); G3 missed."""
    gt = [_gt(G1), _gt(G2, G3)]
    preds = [_pred([G1, FAR[0]], [0.9, 0.8]), _pred([G2, FAR[1]], [0.7, 0.6])]
    return gt, preds


def test_hand_computed_ap():
    # Ranked: TP FP TP FP -> recall 1/3 1/3 2/3 2/3, precision 1 .5 .667 .5.
    # 101-point interpolation: recall 0.00-0.33 (34 points) -> 1; 0.34-0.66 (33) -> 2/3; rest 0.
    gt, preds = _two_images()
    m = evaluate_detections(gt, preds, image_sizes=SIZES, class_names=["cell"])
    expected = (34 * 1.0 + 33 * (2 / 3)) / 101
    assert m.map50 == pytest.approx(expected, abs=1e-6)
    assert m.map == pytest.approx(expected, abs=1e-6)  # exact boxes: same at every IoU
    assert m.ap50_per_class["cell"] == pytest.approx(expected, abs=1e-6)
    assert m.ar100 == pytest.approx(2 / 3, abs=1e-6)
    assert m.precision.shape == (10, 101, 1)


def test_false_positives_on_negative_images_lower_precision():
    gt, preds = _two_images()
    # A third, negative image with one confident false positive, ranked first.
    # Ranked: FP TP FP TP FP -> precision 0 .5 .33 .5 .4; envelope .5 up to recall 2/3.
    gt.append(Detections.empty())
    preds.append(_pred([[10, 10, 40, 40]], [0.95]))
    m = evaluate_detections(gt, preds, image_sizes=[*SIZES, (100, 100)], class_names=["cell"])
    assert m.map50 == pytest.approx(67 * 0.5 / 101, abs=1e-6)
    assert m.num_negative_images == 1 and m.num_images == 3
    assert m.num_ground_truth == 3 and m.num_predictions == 5


def test_iou_thresholds_from_a_partial_overlap():
    # One GT, one detection with IoU 0.64: a TP at IoU 0.50-0.60 (3 of 10 thresholds).
    gt = [_gt([0, 0, 100, 100])]
    preds = [_pred([[0, 0, 100, 64]], [0.9])]
    m = evaluate_detections(gt, preds, image_sizes=[(100, 100)], class_names=["cell"])
    assert m.map50 == pytest.approx(1.0)
    assert m.map75 == pytest.approx(0.0)
    assert m.map == pytest.approx(0.3)


def test_per_class_ap_and_an_absent_class():
    gt = [Detections.from_boxes(np.array([G1, G2], np.float32), [0, 1])]
    preds = [_pred([G1, G2], [0.9, 0.8], [0, 0])]  # second box has the wrong class
    m = evaluate_detections(gt, preds, image_sizes=[(100, 100)], class_names=["a", "b", "c"])
    assert m.ap50_per_class["a"] == pytest.approx(1.0)
    assert m.ap50_per_class["b"] == pytest.approx(0.0)
    assert np.isnan(m.ap50_per_class["c"])  # no ground truth: undefined, left out of the mean
    assert m.map50 == pytest.approx(0.5)
    json.dumps(m.to_dict())  # NaN becomes null: strict JSON


def test_no_predictions_gives_zero():
    gt, _ = _two_images()
    m = evaluate_detections(gt, [Detections.empty()] * 2, image_sizes=SIZES, class_names=["cell"])
    assert m.map50 == 0.0 and m.map == 0.0 and m.ar100 == 0.0


def test_no_ground_truth_is_an_error():
    with pytest.raises(DataError, match="no ground-truth boxes"):
        evaluate_detections([Detections.empty()], [_pred([G1], [0.5])], image_sizes=[(100, 100)],
                            class_names=["cell"])


def test_mismatched_lengths_and_bad_labels_are_rejected():
    gt, preds = _two_images()
    with pytest.raises(ValueError, match="one entry per image"):
        evaluate_detections(gt, preds[:1], image_sizes=SIZES, class_names=["cell"])
    with pytest.raises(ValueError, match="labels must lie"):
        evaluate_detections(gt, [preds[0], _pred([G2], [0.5], [3])], image_sizes=SIZES, class_names=["cell"])


def test_pr_curve_png(tmp_path):
    gt, preds = _two_images()
    m = evaluate_detections(gt, preds, image_sizes=SIZES, class_names=["cell"])
    path = tmp_path / "pr.png"
    plot_pr_curve(m, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pr.png"]  # no temp file left behind
