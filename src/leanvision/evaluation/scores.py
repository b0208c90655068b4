"""Composite accuracy x speed scores, as the seed competitions ranked entries.

- `tianchi` (S0, Tianchi 2020 VNNI track): per metric, the best entry scores 1.0 and every
  other entry 1 + its relative gap to the best; the final score is the sum (lower is better).
  Time enters as throughput (QPS = images / seconds), so an entry taking 196 s against the
  best 34 s scores 1 + (1/34 - 1/196) / (1/34) = 1.83 on time.
- `s3` (S3, CCF BDCI crowd counting on a TPU): (250 - MAE) * 0.2 + (500 - RMSE) * 0.1
  + (0.4 - NAE) * 200 + (2 - time_s) * 100 (higher is better).
- `mlperf-gate`: an entry qualifies if its accuracy is >= 99% of the FP32 reference, then
  qualified entries rank by throughput (MLPerf Inference's closed-division rule).
- `pareto`: the entries no other entry beats on both accuracy and throughput.

`tianchi`, `mlperf-gate` and `pareto` read one accuracy metric; for an error metric (a
counting model's MAE) pass `higher_is_better=False` and "best" and "beats" turn around.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from leanvision.core.errors import ConfigError


class ScoreKind(enum.StrEnum):
    TIANCHI = "tianchi"
    S3 = "s3"
    MLPERF_GATE = "mlperf-gate"
    PARETO = "pareto"


@dataclass(frozen=True)
class Entry:
    """One candidate (a model x engine x precision x settings cell) and its measured figures."""

    name: str
    metrics: Mapping[str, float]

    def get(self, key: str) -> float:
        try:
            return float(self.metrics[key])
        except KeyError:
            raise ConfigError(
                f"entry '{self.name}' has no metric '{key}' (has: {', '.join(self.metrics)})"
            ) from None


@dataclass(frozen=True)
class Scored:
    """An entry's score and rank (1 = best); `details` holds the score's parts."""

    name: str
    score: float
    rank: int
    details: Mapping[str, float] = field(default_factory=dict)


def _ranked(rows: list[tuple[str, float, dict]], *, higher_is_better: bool) -> list[Scored]:
    ordered = sorted(rows, key=lambda r: -r[1] if higher_is_better else r[1])
    return [Scored(name, score, rank, details) for rank, (name, score, details) in enumerate(ordered, start=1)]


def relative_gap_score(value: float, best: float) -> float:
    """Tianchi's per-metric score: 1.0 for the best, else 1 + relative gap to the best."""
    if best == 0:
        return 1.0 if value == 0 else math.inf
    return 1.0 + abs(best - value) / abs(best)


def _best(values: Sequence[float], higher_is_better: bool) -> float:
    return max(values) if higher_is_better else min(values)


def tianchi(entries: Sequence[Entry], *, accuracy: str = "map50", images: str = "images",
            seconds: str = "seconds", higher_is_better: bool = True) -> list[Scored]:
    """S0's score: accuracy gap + throughput gap to the best entry of each (lower is better).

    Args:
        entries: each needs the `accuracy` metric, the number of `images` processed and the
            total wall time `seconds` (reading, pre- and post-processing included).
        higher_is_better: the accuracy metric's direction (False for MAE: the lowest is best).
    """
    qps = {e.name: e.get(images) / e.get(seconds) for e in entries}
    acc = {e.name: e.get(accuracy) for e in entries}
    best_qps, best_acc = max(qps.values()), _best(list(acc.values()), higher_is_better)
    rows = []
    for e in entries:
        norm_time = relative_gap_score(qps[e.name], best_qps)
        norm_acc = relative_gap_score(acc[e.name], best_acc)
        rows.append((e.name, norm_time + norm_acc, {"norm_time": norm_time, "norm_accuracy": norm_acc, "qps": qps[e.name]}))
    return _ranked(rows, higher_is_better=False)


def s3_formula(mae: float, rmse: float, nae: float, time_s: float) -> float:
    """S3's crowd-counting score (higher is better); time_s is seconds per image."""
    return (250 - mae) * 0.2 + (500 - rmse) * 0.1 + (0.4 - nae) * 200 + (2 - time_s) * 100


def s3(entries: Sequence[Entry], *, mae: str = "mae", rmse: str = "rmse", nae: str = "nae",
       time_s: str = "seconds_per_image") -> list[Scored]:
    rows = []
    for e in entries:
        parts = {"mae": e.get(mae), "rmse": e.get(rmse), "nae": e.get(nae), "time_s": e.get(time_s)}
        rows.append((e.name, s3_formula(**parts), parts))
    return _ranked(rows, higher_is_better=True)


def mlperf_gate(entries: Sequence[Entry], *, reference: str, accuracy: str = "map50",
                throughput: str = "images_per_s", fraction: float = 0.99,
                higher_is_better: bool = True) -> list[Scored]:
    """Entries reaching `fraction` of the reference's accuracy, ranked by throughput.

    For an error metric (`higher_is_better=False`) an entry passes at most 1 - `fraction`
    above the reference's error (MAE 10.0 -> at most 10.1). Failing entries are ranked after
    all passing ones (by throughput too) with `details["passed"] = 0`, so a report can
    still show them.
    """
    by_name = {e.name: e for e in entries}
    if reference not in by_name:
        raise ConfigError(f"reference entry '{reference}' not found (entries: {', '.join(by_name)})")
    ref = by_name[reference].get(accuracy)
    target = fraction * ref if higher_is_better else (2 - fraction) * ref
    rows = []
    for e in entries:
        passed = e.get(accuracy) >= target if higher_is_better else e.get(accuracy) <= target
        # Passing entries sort first: their score is the throughput; failing ones are negative.
        score = e.get(throughput) if passed else -1.0 / (1.0 + e.get(throughput))
        rows.append((e.name, score, {"passed": float(passed), "accuracy_target": target,
                                     "throughput": e.get(throughput)}))
    return _ranked(rows, higher_is_better=True)


def pareto_front(entries: Sequence[Entry], *, accuracy: str = "map50",
                 throughput: str = "images_per_s", higher_is_better: bool = True) -> list[Scored]:
    """Non-dominated entries (best accuracy in its direction, most throughput), best
    accuracy first; others after, rank 0. Scores are the accuracy values."""
    sign = 1.0 if higher_is_better else -1.0
    points = [(e.name, e.get(accuracy), e.get(throughput)) for e in entries]

    def dominated(a: tuple[str, float, float]) -> bool:
        return any(sign * b[1] >= sign * a[1] and b[2] >= a[2] and (b[1] != a[1] or b[2] > a[2]) for b in points)

    front = sorted((p for p in points if not dominated(p)), key=lambda p: -sign * p[1])
    names = {p[0] for p in front}
    scored = [Scored(n, acc, rank, {"throughput": thr, "on_front": 1.0})
              for rank, (n, acc, thr) in enumerate(front, start=1)]
    scored += [Scored(n, acc, 0, {"throughput": thr, "on_front": 0.0}) for n, acc, thr in points if n not in names]
    return scored


def score(kind: ScoreKind | str, entries: Sequence[Entry], **keys: str | bool) -> list[Scored]:
    """Rank `entries` by the named score; `keys` rename the metrics each score reads (and
    `higher_is_better` gives the accuracy metric's direction for tianchi, mlperf-gate, pareto)."""
    functions = {ScoreKind.TIANCHI: tianchi, ScoreKind.S3: s3, ScoreKind.MLPERF_GATE: mlperf_gate,
                 ScoreKind.PARETO: pareto_front}
    try:
        kind = ScoreKind(kind)
    except ValueError:
        raise ConfigError(f"unknown score '{kind}' (known: {', '.join(k.value for k in ScoreKind)})") from None
    if not entries:
        raise ConfigError("no entries to score")
    return functions[kind](entries, **keys)


def entries_from(rows: Sequence[Mapping[str, float | str]], *, name_key: str = "name") -> list[Entry]:
    """Entries from table rows (dicts with a name and numeric metrics)."""
    return [Entry(str(r[name_key]), {k: float(v) for k, v in r.items() if k != name_key and isinstance(v, (int, float))})
            for r in rows]
