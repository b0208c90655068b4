"""NMS variants: hard NMS against torchvision, Soft-NMS and Matrix NMS against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision

from leanvision.core.boxes import box_iou
from leanvision.runtime.nms import SoftKind, matrix_nms, nms, soft_nms

# IoU(A, B) = 50/100 = 0.5, IoU(A, D) = 80/100 = 0.8, IoU(B, D) = 50/80 = 0.625; C is apart.
A, B, C, D = [0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30], [0, 0, 10, 8]
BOXES = np.array([B, D, A, C], np.float32)  # deliberately not in score order
SCORES = np.array([0.8, 0.6, 0.9, 0.7], np.float32)
IA, IB, IC, ID = 2, 0, 3, 1


def random_boxes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (n, 2))], axis=1).astype(np.float32)
    return boxes, rng.uniform(0.05, 1.0, n).astype(np.float32), rng.integers(0, 3, n)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("iou", [0.3, 0.5, 0.7])
def test_hard_nms_equals_torchvision(seed, iou):
    boxes, scores, labels = random_boxes(400, seed)
    tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
    expected = torchvision.ops.batched_nms(tb, ts, torch.from_numpy(labels), iou).numpy()
    np.testing.assert_array_equal(nms(boxes, scores, iou, labels), expected)
    np.testing.assert_array_equal(nms(boxes, scores, iou), torchvision.ops.nms(tb, ts, iou).numpy())


def test_hard_nms_hand_case_and_empty_input():
    assert nms(BOXES, SCORES, 0.45).tolist() == [IA, IC]
    assert nms(BOXES, SCORES, 0.5).tolist() == [IA, IB, IC]  # IoU exactly 0.5 is not > 0.5
    assert nms(BOXES, SCORES, 0.85).tolist() == [IA, IB, IC, ID]
    assert nms(BOXES, SCORES, 0.45, np.array([1, 0, 0, 0])).tolist() == [IA, IB, IC]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_soft_nms_linear_hand_case():
    keep, scores = soft_nms(BOXES, SCORES, kind=SoftKind.LINEAR, iou_threshold=0.3, score_threshold=0.001)
    # A first; B *= 1 - 0.5, D *= 1 - 0.8; C untouched; after B is taken, D *= 1 - 0.625.
    assert keep.tolist() == [IA, IC, IB, ID]
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.8 * 0.5, 0.6 * 0.2 * 0.375], rtol=1e-6)
    keep, _ = soft_nms(BOXES, SCORES, kind=SoftKind.LINEAR, iou_threshold=0.3, score_threshold=0.05)
    assert keep.tolist() == [IA, IC, IB]  # D decayed to 0.045: dropped


def test_soft_nms_gaussian_hand_case():
    keep, scores = soft_nms(BOXES, SCORES, kind=SoftKind.GAUSSIAN, sigma=0.5, score_threshold=0.001)
    g = lambda iou: math.exp(-(iou**2) / 0.5)  # noqa: E731
    assert keep.tolist() == [IA, IC, IB, ID]
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.8 * g(0.5), 0.6 * g(0.8) * g(0.625)], rtol=1e-6)


def test_soft_nms_is_class_aware_with_labels():
    labels = np.array([1, 0, 0, 0])  # B is another class than A and D
    keep, scores = soft_nms(BOXES, SCORES, kind=SoftKind.LINEAR, iou_threshold=0.3, labels=labels)
    assert keep.tolist() == [IA, IB, IC, ID]
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7, 0.6 * 0.2], rtol=1e-6)


def soft_nms_reference(boxes, scores, sigma, threshold):
    """Algorithm 1 of Bodla et al. 2017 (Gaussian), one box at a time."""
    boxes, scores = [list(b) for b in boxes], [float(s) for s in scores]
    index = list(range(len(scores)))
    out = []
    while index:
        m = max(range(len(index)), key=lambda k: (scores[index[k]], -k))
        best = index.pop(m)
        out.append((best, scores[best]))
        for i in index:
            iou = box_iou(np.array([boxes[best]]), np.array([boxes[i]]))[0, 0]
            scores[i] *= math.exp(-(iou * iou) / sigma)
        index = [i for i in index if scores[i] > threshold]
    return out


@pytest.mark.parametrize("seed", range(3))
def test_soft_nms_gaussian_equals_a_reference_loop(seed):
    boxes, scores, _ = random_boxes(120, seed)
    keep, new = soft_nms(boxes, scores, kind=SoftKind.GAUSSIAN, sigma=0.5, score_threshold=0.01)
    expected = soft_nms_reference(boxes, scores, 0.5, 0.01)
    assert keep.tolist() == [i for i, _ in expected]
    np.testing.assert_allclose(new, [s for _, s in expected], rtol=1e-5)
    limited, _ = soft_nms(boxes, scores, kind=SoftKind.GAUSSIAN, sigma=0.5, score_threshold=0.01, max_detections=10)
    assert limited.tolist() == keep[:10].tolist()


def test_matrix_nms_linear_hand_case():
    keep, scores = matrix_nms(BOXES, SCORES, kind=SoftKind.LINEAR, score_threshold=0.001)
    # B: by A, (1 - 0.5) / (1 - 0) = 0.5. D: by A, 0.2 / 1; by B, (1 - 0.625) / (1 - 0.5) = 0.75: min 0.2.
    assert keep.tolist() == [IA, IC, IB, ID]
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.8 * 0.5, 0.6 * 0.2], rtol=1e-6)


def test_matrix_nms_gaussian_hand_case():
    keep, scores = matrix_nms(BOXES, SCORES, kind=SoftKind.GAUSSIAN, sigma=2.0, score_threshold=0.001)
    # D: by A exp(-2 * 0.8^2) = e^-1.28; by B exp(-2 * (0.625^2 - 0.5^2)) = e^-0.28: min e^-1.28.
    assert keep.tolist() == [IA, IC, IB, ID]
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.8 * math.exp(-0.5), 0.6 * math.exp(-1.28)], rtol=1e-6)


def test_matrix_nms_threshold_classes_and_top_k():
    keep, _ = matrix_nms(BOXES, SCORES, kind=SoftKind.LINEAR, score_threshold=0.2)
    assert keep.tolist() == [IA, IC, IB]  # D at 0.12 is dropped
    keep, scores = matrix_nms(BOXES, SCORES, kind=SoftKind.LINEAR, score_threshold=0.001, labels=np.array([1, 0, 0, 0]))
    # B is alone in its class; D is decayed by A only.
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7, 0.6 * 0.2], rtol=1e-6)
    keep, _ = matrix_nms(BOXES, SCORES, kind=SoftKind.LINEAR, score_threshold=0.001, top_k=2)
    assert keep.tolist() == [IA, IB]


def test_matrix_nms_survives_duplicates_and_empty_input():
    boxes = np.array([A, A, C], np.float32)
    keep, scores = matrix_nms(boxes, np.array([0.9, 0.8, 0.7]), kind=SoftKind.LINEAR, score_threshold=0.001)
    assert keep.tolist() == [0, 2] and np.isfinite(scores).all()  # the exact duplicate decays to 0
    keep, scores = matrix_nms(np.zeros((0, 4)), np.zeros(0))
    assert keep.shape == scores.shape == (0,)
