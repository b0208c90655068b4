"""The accuracy budget: keep the fewest most-sensitive layers in FP32 that meet a maximum drop.

With layers ranked by sensitivity, candidate k keeps the top k in FP32. The drop is measured
(the validation metric, not a proxy) for k = 0, 1, 2, 4, ... until one meets the budget, then
bisected between the last failure and the first success: O(log n) measurements for n
layers, each on a model built from the one quantized model by restoring those layers
("bypass", seconds). The chosen set is then quantized afresh with those layers ignored, so
bias correction and statistics match what is left in INT8, and measured again. If that model
misses the budget, the kept set grows (to 2k, then further) and is re-quantized, a bounded
number of times. Every model measured is a candidate; the best one is kept:

- among candidates within the budget, the fewest FP32 layers (fastest), then the smallest drop;
- when none is within the budget, the smallest drop (and the outcome says the budget was missed).

Accuracy drops are in the metric's budget unit (`validation.Metric.drop`: points of mAP@0.5,
or MAE's rise in objects per image). The metric is not monotonic in k on a small validation
set; the bisection assumes it roughly is, and the final measurement is what the report states.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

REFINEMENTS = 2  # re-quantizations with a larger kept set when the first one misses


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One measured model.

    Attributes:
        kept: layers kept in FP32 by the search (the user's --keep-fp32 come on top).
        score: its validation metric (mAP@0.5 in 0-1, or MAE).
        drop: how much worse than FP32, in the budget's unit.
        how: "bypass" (the one quantized model with `kept` restored to FP32) or
            "requantized" (quantized afresh with `kept` ignored).
    """

    kept: tuple[str, ...]
    score: float
    drop: float
    how: str

    def to_dict(self) -> dict:
        return {"kept": len(self.kept), "layers": list(self.kept), "score": self.score, "drop": self.drop,
                "how": self.how}


Measure = Callable[[tuple[str, ...]], tuple[float, Any]]  # kept layers -> (score, model)


def search_kept_count(drop_of: Callable[[int], float], total: int, budget: float) -> int | None:
    """The smallest k in [0, total] with drop_of(k) <= budget, by doubling then bisection,
    assuming drops fall as k grows; None when even k = total misses."""
    cache: dict[int, float] = {}

    def meets(k: int) -> bool:
        if k not in cache:
            cache[k] = drop_of(k)
        return cache[k] <= budget

    if meets(0):
        return 0
    low, high = 0, min(1, total)
    while not meets(high):
        if high >= total:
            return None
        low, high = high, min(2 * high, total)
    while high - low > 1:
        middle = (low + high) // 2
        if meets(middle):
            high = middle
        else:
            low = middle
    return high


@dataclasses.dataclass
class BudgetOutcome:
    """What the search found.

    Attributes:
        budget: the allowed drop, in the metric's budget unit.
        candidates: every measured model, in measurement order.
        best: the chosen candidate; `model` is its model.
        reached: whether `best` is within the budget.
    """

    budget: float
    candidates: list[Candidate]
    best: Candidate
    model: Any
    reached: bool

    def to_dict(self) -> dict:
        return {"budget": self.budget, "reached": self.reached, "best": self.best.to_dict(),
                "candidates": [c.to_dict() for c in self.candidates]}


class BudgetSearch:
    """Runs the search (see the module docstring).

    Args:
        order: layers, most sensitive first.
        budget: maximum drop, in the unit of `drop`.
        drop: a score -> how much worse it is than FP32's (`Metric.drop` against FP32).
        bypass: kept -> (score, model) from the one quantized model.
        requantize: kept -> (score, model) from a fresh quantization.
    """

    def __init__(self, order: Sequence[str], budget: float, drop: Callable[[float], float], *, bypass: Measure,
                 requantize: Measure) -> None:
        self.order = list(order)
        self.budget = budget
        self._drop = drop
        self._bypass = bypass
        self._requantize = requantize
        self.candidates: list[Candidate] = []
        self._models: list[Any] = []

    def _measure(self, k: int, how: str) -> Candidate:
        kept = tuple(self.order[:k])
        for candidate in self.candidates:
            # Nothing kept: the one quantized model is both the bypass and the fresh quantization.
            if candidate.kept == kept and (candidate.how == how or not kept):
                return candidate
        score, model = (self._bypass if how == "bypass" else self._requantize)(kept)
        candidate = Candidate(kept, score, self._drop(score), how)
        self.candidates.append(candidate)
        self._models.append(model)
        return candidate

    def add_all_int8(self, score: float, model: Any) -> None:
        """Record the one quantized model (nothing kept), measured before the search."""
        self.candidates.append(Candidate((), score, self._drop(score), "requantized"))
        self._models.append(model)

    def run(self) -> BudgetOutcome:
        total = len(self.order)
        k = search_kept_count(lambda n: self._measure(n, "bypass").drop, total, self.budget)
        k = total if k is None else k
        for _ in range(REFINEMENTS + 1):
            if self._measure(k, "requantized").drop <= self.budget or k >= total:
                break
            k = min(total, max(k + 1, 2 * k))
        return self._outcome()

    def _outcome(self) -> BudgetOutcome:
        within = [i for i, c in enumerate(self.candidates) if c.drop <= self.budget]
        if within:
            index = min(within, key=lambda i: (len(self.candidates[i].kept), self.candidates[i].drop))
        else:
            index = min(range(len(self.candidates)), key=lambda i: self.candidates[i].drop)
        best = self.candidates[index]
        return BudgetOutcome(self.budget, list(self.candidates), best, self._models[index], bool(within))
