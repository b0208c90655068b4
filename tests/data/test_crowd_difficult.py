"""COCO `iscrowd` and VOC `difficult` boxes are scored as pycocotools and the VOC devkit do.

A crowd box: detections matching it are ignored (not false positives), it is not a positive
to find. A difficult box: the same, with ordinary IoU. Checked against pycocotools itself on
hand-made cases, and through the labelled-set reader `val`, `bench` and `quantize` use.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from leanvision.core import Detections
from leanvision.data.labelled import read_detection_set
from leanvision.evaluation.detection import evaluate_detections

SIZES = [(100, 100), (100, 100)]


def dets(boxes, scores=None) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.ones(len(boxes)) if scores is None else scores
    return Detections(boxes, np.asarray(scores, np.float32), np.zeros(len(boxes), np.int64))


def pycocotools_map(gt: list[tuple[int, list[float], int]], dt: list[tuple[int, list[float], float]]) -> list[float]:
    """COCOeval stats [mAP, mAP50] straight from pycocotools, on COCO dicts (xywh, 1 class)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1, "width": w, "height": h} for i, (w, h) in enumerate(SIZES)]
    cats = [{"id": 1, "name": "a"}]

    def coco(anns):
        c = COCO()
        c.dataset = {"images": images, "annotations": anns, "categories": cats}
        with contextlib.redirect_stdout(io.StringIO()):
            c.createIndex()
        return c

    def xywh(b):
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]]

    gts = [{"id": k + 1, "image_id": i, "category_id": 1, "bbox": xywh(b), "area": xywh(b)[2] * xywh(b)[3],
            "iscrowd": crowd} for k, (i, b, crowd) in enumerate(gt)]
    dts = [{"id": k + 1, "image_id": i, "category_id": 1, "bbox": xywh(b), "area": xywh(b)[2] * xywh(b)[3],
            "score": s, "iscrowd": 0} for k, (i, b, s) in enumerate(dt)]
    evaluator = COCOeval(coco(gts), coco(dts), iouType="bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [max(float(evaluator.stats[0]), 0.0), max(float(evaluator.stats[1]), 0.0)]


CROWD = [60, 0, 100, 100]
A, B = [10, 10, 50, 50], [0, 0, 20, 20]


def test_crowd_matches_pycocotools():
    # Image 1: an object A and a crowd region; a detection inside the crowd, one on A.
    # Image 2: object B, found late, after a false positive.
    gt = [dets([A, CROWD]), dets([B])]
    pred = [dets([A, [70, 10, 90, 40]], [0.9, 0.8]), dets([[50, 50, 90, 90], B], [0.7, 0.6])]
    crowd = [np.array([False, True]), np.array([False])]
    ours = evaluate_detections(gt, pred, image_sizes=SIZES, class_names=["a"], crowd=crowd)
    reference = pycocotools_map([(1, A, 0), (1, CROWD, 1), (2, B, 0)],
                                [(1, A, 0.9), (1, [70, 10, 90, 40], 0.8), (2, [50, 50, 90, 90], 0.7), (2, B, 0.6)])
    assert [ours.map, ours.map50] == pytest.approx(reference, abs=1e-12)
    plain = evaluate_detections(gt, pred, image_sizes=SIZES, class_names=["a"])
    assert plain.map50 < ours.map50  # as an ordinary object the crowd costs a miss and a false positive


def test_difficult_is_ignored_like_the_voc_devkit():
    # A found; difficult D found by a higher-scored detection; difficult E missed.
    d, e = [60, 60, 90, 90], [60, 0, 90, 30]
    gt = [dets([A, d, e]), dets([B])]
    pred = [dets([d, A], [0.95, 0.9]), dets([B], [0.6])]
    difficult = [np.array([False, True, True]), np.array([False])]
    ours = evaluate_detections(gt, pred, image_sizes=SIZES, class_names=["a"], difficult=difficult)
    # Ignoring D, E and the detection matched to D is scoring without them.
    reference = pycocotools_map([(1, A, 0), (2, B, 0)], [(1, A, 0.9), (2, B, 0.6)])
    assert [ours.map, ours.map50] == pytest.approx(reference, abs=1e-12)
    assert ours.map50 == pytest.approx(1.0)
    plain = evaluate_detections(gt, pred, image_sizes=SIZES, class_names=["a"])
    assert plain.map50 < 0.8  # as positives, the missed E caps recall at 3 of 4


def test_labelled_set_scorer_honours_crowd_flags(tmp_path):
    import cv2

    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(root / "images" / name), np.zeros((100, 100), np.uint8))
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 100},
                   {"id": 2, "file_name": "b.png", "width": 100, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [60, 0, 40, 100], "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 20, 20], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "a"}],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    labelled = read_detection_set(root, ["a"])
    pred = [dets([A, [70, 10, 90, 40]], [0.9, 0.8]), dets([[50, 50, 90, 90], B], [0.7, 0.6])]
    scores = labelled.scorer()(pred)
    reference = pycocotools_map([(1, A, 0), (1, CROWD, 1), (2, B, 0)],
                                [(1, A, 0.9), (1, [70, 10, 90, 40], 0.8), (2, [50, 50, 90, 90], 0.7), (2, B, 0.6)])
    assert [scores["map"], scores["map50"]] == pytest.approx(reference, abs=1e-12)
