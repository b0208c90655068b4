"""core.ClassProbs: softmax, prediction, top-k, names, JSON form and input checks."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from leanvision.core import ClassProbs


def test_probs_are_a_stable_softmax():
    probs = ClassProbs(np.array([1000.0, 1001.0, 999.0])).probs  # exp(1000) overflows float64
    expected = np.exp([-1.0, 0.0, -2.0]) / np.exp([-1.0, 0.0, -2.0]).sum()
    assert probs.dtype == np.float32 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs, expected, rtol=1e-6)


def test_prediction_topk_and_names():
    result = ClassProbs([0.5, 2.0, -1.0, 2.0, 1.0], class_names=("a", "b", "c", "d", "e"))
    assert result.index == 1 and result.name == "b"  # a tie goes to the lower index
    assert result.score == pytest.approx(float(result.probs[1]))
    top = result.topk(3)
    assert [i for i, _ in top] == [1, 3, 4] and top[0][1] == top[1][1]
    assert len(result.topk(10)) == 5
    assert "class=1 ('b')" in repr(result) and "classes=5" in repr(result)
    with pytest.raises(ValueError, match="at least 1"):
        result.topk(0)


def test_topk_ranks_by_logits_where_float32_probabilities_tie():
    result = ClassProbs([0.0, 3e-8])
    assert result.probs[0] == result.probs[1] == 0.5
    assert result.index == result.topk(1)[0][0] == 1


def test_to_dict_is_json_with_the_top_five():
    result = ClassProbs(np.arange(7, dtype=np.float32), class_names=tuple("abcdefg"))
    data = json.loads(json.dumps(result.to_dict()))
    assert (data["index"], data["name"]) == (6, "g")
    assert [c["name"] for c in data["top5"]] == list("gfedc")
    assert sum(c["prob"] for c in data["top5"]) < 1
    unnamed = ClassProbs([0.0, 1.0])
    assert unnamed.name is None and unnamed.to_dict()["top5"][0] == {"index": 1, "name": None,
                                                                      "prob": unnamed.score}
    assert repr(unnamed).startswith("ClassProbs(class=1,")
    assert pickle.loads(pickle.dumps(result)).index == 6


@pytest.mark.parametrize(("logits", "names", "message"), [
    (np.zeros((2, 3)), None, "non-empty"),
    (np.zeros(0), None, "non-empty"),
    ([0.0, np.nan], None, "finite"),
    ([0.0, np.inf], None, "finite"),
    ([0.0, 1.0], ("a",), "1 class names for 2"),
])
def test_bad_input_is_refused(logits, names, message):
    with pytest.raises(ValueError, match=message):
        ClassProbs(logits, class_names=names)
