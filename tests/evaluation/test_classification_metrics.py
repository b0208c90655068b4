"""evaluation.classification against scikit-learn and hand-computed cases."""

from __future__ import annotations

import json
import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    top_k_accuracy_score,
)

from leanvision.core import ClassProbs, DataError
from leanvision.evaluation.classification import (
    ClassificationScorer,
    class_groups,
    classification_metrics,
    expected_calibration_error,
)


def random_set(seed: int, n: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, c) probabilities (continuous: no ties) and labels that are often right."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), labels] += rng.uniform(0, 2, n)  # better than chance, not perfect
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), labels


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 80), c=st.integers(3, 12))
def test_agrees_with_scikit_learn(seed, n, c):
    probs, labels = random_set(seed, n, c)
    m = classification_metrics(probs, labels)
    predicted = probs.argmax(1)
    every = np.arange(c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k >= C, and predicted classes absent from the labels
        assert m.top1 == pytest.approx(accuracy_score(labels, predicted))
        assert m.topk == pytest.approx(top_k_accuracy_score(labels, probs, k=min(5, c), labels=every))
        assert m.mean_class_accuracy == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert m.k == min(5, c) and m.images == n
    cm = confusion_matrix(labels, predicted, labels=every)
    rows = cm.sum(1)
    per_class = np.array(m.per_class_accuracy)
    np.testing.assert_array_equal(np.isnan(per_class), rows == 0)
    np.testing.assert_allclose(per_class[rows > 0], np.diag(cm)[rows > 0] / rows[rows > 0])
    off = cm - np.diag(np.diag(cm))
    assert [p.count for p in m.confused_pairs] == sorted(off[off > 0].tolist(), reverse=True)[:10]
    for pair in m.confused_pairs:
        assert pair.count == cm[pair.true, pair.predicted]
        assert pair.share == pytest.approx(pair.count / rows[pair.true])


def test_logits_give_the_metrics_of_their_softmax():
    probs, labels = random_set(3, 50, 7)
    expected = classification_metrics(probs, labels).summary()
    assert classification_metrics(np.log(probs) + 5.0, labels, logits=True).summary() == pytest.approx(expected)
    assert classification_metrics(np.log(probs) + 5.0, labels).summary() == pytest.approx(expected)  # detected
    # Probabilities taken as logits on request: softmaxed again, so only the ECE changes.
    again = classification_metrics(probs, labels, logits=True).summary()
    assert again["top1"] == expected["top1"] and again["ece"] != pytest.approx(expected["ece"])
    with pytest.raises(DataError, match=r"not probabilities .* but logits=False"):
        classification_metrics(np.log(probs), labels, logits=False)


def test_ece_hand_computed():
    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.35, 0.33, 0.32]])
    labels = np.array([0, 1, 0, 0])
    # Bins (13/15, 14/15]: 2 images, accuracy 0.5, confidence 0.9; (8/15, 9/15]: 1 image,
    # accuracy 1, confidence 0.6; (5/15, 6/15]: 1 image, accuracy 1, confidence 0.35.
    expected = 2 / 4 * abs(0.5 - 0.9) + 1 / 4 * abs(1 - 0.6) + 1 / 4 * abs(1 - 0.35)
    assert classification_metrics(probs, labels).ece == pytest.approx(expected)
    # Bins are closed on the right: 0.6 = 9/15 shares 0.55's bin, 0.2 = 3/15 is not in 0.21's.
    assert expected_calibration_error(np.array([0.6, 0.55]), np.array([True, False])) == pytest.approx(0.075)
    assert expected_calibration_error(np.array([0.2, 0.21]), np.array([True, True])) == pytest.approx(0.795)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([True, True])) == 0.0


def test_head_medium_tail_split_by_training_count_rank():
    train_counts = [5, 50, 5, 100, 1, 20, 5]
    # Ranked 3 (100), 1 (50), 5 (20), then the 5s by index 0, 2, 6, then 4 (1): thirds of 3, 2, 2.
    head, medium, tail = class_groups(train_counts, 7)
    assert (head.tolist(), medium.tolist(), tail.tolist()) == ([3, 1, 5], [0, 2], [6, 4])
    labels = np.array([3, 3, 1, 5, 0, 2, 6])
    predicted = np.array([3, 1, 1, 5, 0, 0, 4])  # head 3/4, medium 1/2, tail 0/1
    probs = np.full((7, 7), 0.02)
    probs[np.arange(7), predicted] = 0.88
    m = classification_metrics(probs, labels, train_counts=train_counts)
    assert m.group_top1 == pytest.approx((0.75, 0.5, 0.0))
    summary = m.summary()
    assert (summary["head_top1"], summary["medium_top1"], summary["tail_top1"]) == pytest.approx((0.75, 0.5, 0.0))
    assert "head_top1" not in classification_metrics(probs, labels).summary()
    with pytest.raises(DataError, match="7 non-negative training counts"):
        classification_metrics(probs, labels, train_counts=[1, 2, 3])


def test_a_third_without_validation_images_is_nan_and_none_in_json():
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    m = classification_metrics(probs, [0, 1], train_counts=[3, 2, 1])
    assert m.group_top1[:2] == (1.0, 1.0) and math.isnan(m.group_top1[2])
    assert json.loads(json.dumps(m.to_dict(), allow_nan=False))["tail_top1"] is None


def test_a_class_absent_from_validation_is_nan_and_left_out_of_the_mean():
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.7, 0.2, 0.1]])
    m = classification_metrics(probs, [0, 1, 1], class_names=("a", "b", "c"))
    assert m.per_class_accuracy[:2] == (1.0, 0.5) and math.isnan(m.per_class_accuracy[2])
    assert m.mean_class_accuracy == pytest.approx(0.75)
    data = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert data["per_class_accuracy"][2] == {"index": 2, "name": "c", "accuracy": None}
    assert data["confused_pairs"] == [{"true": 1, "true_name": "b", "predicted": 0, "predicted_name": "a",
                                 "count": 1, "share": 0.5}]


def test_ties_rank_by_class_index_where_scikit_learn_prefers_the_higher_index():
    # Places 4-6 tie: ours keeps classes 3 and 4 in the top 5, scikit-learn 5 and 4.
    row = [0.3, 0.2, 0.2, 0.1, 0.1, 0.1]
    probs = np.array([row, row])
    assert classification_metrics(probs, [5, 3]).topk == 0.5
    assert classification_metrics(probs, [5, 5]).topk == 0.0
    assert top_k_accuracy_score([5, 5], probs, k=5, labels=np.arange(6)) == 1.0
    # Top-1 is argmax (the lower index), as ClassProbs.index is; scikit-learn's k=1 picks class 1.
    tie = np.array([[0.5, 0.5, 0.0]])
    assert classification_metrics(tie, [0]).top1 == 1.0 and ClassProbs([1.0, 1.0, -9.0]).index == 0
    assert top_k_accuracy_score([0], tie, k=1, labels=np.arange(3)) == 0.0


@pytest.mark.parametrize(("scores", "labels", "message"), [
    (np.zeros((0, 3)), [], "no images"),
    (np.full((2, 3), 1 / 3), [0], r"\(N, C\) scores and \(N,\) labels"),
    (np.full((2, 3), 1 / 3), [0, 3], r"class indices in \[0, 3\)"),
    (np.full((2, 3), 1 / 3), [0.0, 1.0], "class indices"),
    (np.array([[np.nan, 0.5, 0.5]]), [0], "finite"),
])
def test_bad_input(scores, labels, message):
    with pytest.raises(DataError, match=message):
        classification_metrics(scores, labels)


def test_scorer_scores_class_probs_and_pickles():
    probs, labels = random_set(7, 30, 6)
    predictions = [ClassProbs(np.log(p)) for p in probs]
    names = tuple("abcdef")
    scorer = pickle.loads(pickle.dumps(ClassificationScorer(tuple(labels.tolist()), names, (9, 8, 7, 3, 2, 1))))
    figures = scorer(predictions)
    expected = classification_metrics(probs, labels, train_counts=(9, 8, 7, 3, 2, 1)).summary()
    assert set(figures) == {"top1", "top5", "mean_class_accuracy", "ece", "head_top1", "medium_top1", "tail_top1"}
    assert figures == pytest.approx(expected, abs=1e-6)
    assert all(isinstance(v, float) for v in figures.values())
    assert set(ClassificationScorer(tuple(labels.tolist()), names)(predictions)) == {
        "top1", "top5", "mean_class_accuracy", "ece"}
    with pytest.raises(DataError, match="29 predictions for 30 labelled images"):
        scorer(predictions[:-1])
    with pytest.raises(DataError, match="no images"):
        ClassificationScorer((), names)([])
    with pytest.raises(DataError, match=r"\[3\] class scores, the set 6 classes"):
        scorer([ClassProbs([0.0, 1.0, 2.0])] * 30)
