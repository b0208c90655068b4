import numpy as np
import pytest

from leanvision.core import Detections
from leanvision.core.boxes import box_iou


def make(n: int) -> Detections:
    boxes = np.stack([np.arange(n), np.arange(n), np.arange(n) + 10, np.arange(n) + 5], axis=1)
    return Detections(boxes, np.linspace(0.1, 0.9, n), np.arange(n) % 3)


def test_fields_are_coerced_to_documented_dtypes():
    d = make(4)
    assert d.boxes.dtype == np.float32 and d.boxes.shape == (4, 4)
    assert d.scores.dtype == np.float32 and d.labels.dtype == np.int64


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="differ in length"):
        Detections(np.zeros((3, 4)), np.zeros(2), np.zeros(3))


def test_boolean_indexing_selects_every_field_together():
    d = make(5)
    keep = d.scores > 0.5
    sub = d[keep]
    assert len(sub) == int(keep.sum())
    np.testing.assert_array_equal(sub.boxes, d.boxes[keep])
    np.testing.assert_array_equal(sub.labels, d.labels[keep])
    assert len(d[2]) == 1 and sub.scores.min() > 0.5
    assert len(d[-1]) == 1 and d[-1].scores[0] == d.scores[-1]


def test_shift_scale_clip_and_concat():
    d = make(3)
    shifted = d.shift(100, 200)
    np.testing.assert_allclose(shifted.boxes[:, [0, 2]], d.boxes[:, [0, 2]] + 100)
    np.testing.assert_allclose(shifted.boxes[:, [1, 3]], d.boxes[:, [1, 3]] + 200)
    np.testing.assert_allclose(d.scale(2, 3).boxes[1], [2, 3, 22, 18])
    assert d.clip(8, 4).boxes.max() <= 8
    both = Detections.concat([d, shifted])
    assert len(both) == 6 and both[3:].equals(shifted)
    assert len(Detections.concat([])) == 0


def test_areas():
    d = Detections.from_boxes(np.array([[0, 0, 2, 3], [5, 5, 4, 9]]), [0, 0])
    np.testing.assert_allclose(d.areas, [6, 0])
    np.testing.assert_array_equal(d.scores, [1, 1])


def test_iou_against_hand_computed_case():
    a = np.array([[0, 0, 2, 2]], np.float32)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[1 / 7, 1.0, 0.0]], rtol=1e-6)
