"""The accuracy-budget search on fake measurements: doubling, bisection, refinement, best."""

from __future__ import annotations

import math

import pytest

from leanvision.compression.quantize.budget import BudgetSearch, search_kept_count
from leanvision.compression.quantize.validation import MAE, MAP50


def test_search_finds_the_smallest_count_within_budget_in_log_steps():
    calls = []

    def drop_of(k: int) -> float:
        calls.append(k)
        return max(0.0, 10.0 - k)  # points; falls by one per layer kept

    assert search_kept_count(drop_of, 100, budget=3.0) == 7
    assert len(calls) <= 2 * math.ceil(math.log2(100)) + 2
    assert len(set(calls)) == len(calls)  # nothing measured twice


@pytest.mark.parametrize(("budget", "expected"), [(10.0, 0), (9.0, 1), (0.0, 10), (-1.0, None)])
def test_search_edges(budget, expected):
    assert search_kept_count(lambda k: max(0.0, 10.0 - k), 10, budget) == expected


def _fake(order, fp32=0.90, *, requant_penalty=0.0):
    """map50 rises 1 point per kept layer among the first 4, then stays: a bypass of k
    layers has drop max(0, 4 - k); re-quantizing fewer than 8 costs `requant_penalty` more."""
    def bypass(kept):
        return fp32 - 0.01 * max(0, 4 - len(kept)), ("bypass", kept)

    def requantize(kept):
        penalty = requant_penalty if len(kept) < 8 else 0.0
        return fp32 - 0.01 * (max(0, 4 - len(kept)) + penalty), ("requantized", kept)

    search = BudgetSearch(order, 0.5, lambda score: MAP50.drop(fp32, score), bypass=bypass, requantize=requantize)
    search.add_all_int8(fp32 - 0.04, ("requantized", ()))
    return search


def test_the_chosen_set_is_requantized_and_kept_when_within_budget():
    order = [f"layer{i}" for i in range(20)]
    outcome = _fake(order).run()
    assert outcome.reached and outcome.best.kept == tuple(order[:4]) and outcome.best.how == "bypass"
    assert outcome.model == ("bypass", tuple(order[:4]))  # fewest layers first; bypass found it first
    assert any(c.how == "requantized" and len(c.kept) == 4 for c in outcome.candidates)


def test_a_requantized_miss_grows_the_kept_set():
    order = [f"layer{i}" for i in range(20)]
    outcome = _fake(order, requant_penalty=0.6).run()  # re-quantizing 4 layers misses; 8 meets
    requantized = [(len(c.kept), c.drop) for c in outcome.candidates if c.how == "requantized" and c.kept]
    assert requantized == [(4, pytest.approx(0.6)), (8, pytest.approx(0.0))]
    assert outcome.reached and outcome.best.drop <= 0.5


def test_an_unreachable_budget_keeps_the_best_model_and_says_so():
    order = ["a", "b", "c"]
    search = BudgetSearch(order, 0.5, lambda score: MAP50.drop(0.9, score), bypass=lambda kept: (0.8 + 0.01 * len(kept), kept),
                          requantize=lambda kept: (0.8 + 0.02 * len(kept), ("r", kept)))
    search.add_all_int8(0.8, ())
    outcome = search.run()
    assert not outcome.reached
    assert outcome.best.score == pytest.approx(max(c.score for c in outcome.candidates))
    assert outcome.model == ("r", ("a", "b", "c"))


def test_a_lower_is_better_metric_searches_the_same_way():
    """Counting budgets are MAE rises: INT8 everywhere adds 3 objects per image, each kept
    layer of the first three takes one back; a 1.5 budget needs two layers."""
    order = ["a", "b", "c", "d"]
    fp32_mae = 10.0

    def mae(kept):
        return fp32_mae + max(0, 3 - len(kept)), kept

    search = BudgetSearch(order, 1.5, lambda score: MAE.drop(fp32_mae, score), bypass=mae, requantize=mae)
    search.add_all_int8(fp32_mae + 3, ())
    outcome = search.run()
    assert outcome.reached and outcome.best.kept == ("a", "b") and outcome.best.drop == pytest.approx(1.0)


def test_metric_drops_are_in_the_budget_unit():
    assert MAP50.drop(0.9012, 0.8962) == pytest.approx(0.5)  # points of mAP@0.5
    assert MAE.drop(10.0, 12.5) == pytest.approx(2.5)  # objects per image
    assert MAE.drop(10.0, 9.0) == pytest.approx(-1.0)  # better than FP32
