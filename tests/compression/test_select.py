"""Calibration selection on hand-made 2-D features, and NNCF's subset_size in images."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from leanvision.compression.quantize.calibration import nncf_subset_size
from leanvision.compression.quantize.options import CalibSelect
from leanvision.compression.quantize.select import (
    select,
    select_diverse,
    select_random,
    select_similar,
)

# A(0,0) B(4,0) C(0,3) D(9,9) E(3,3); centroid (3.2, 3.0).
POINTS = np.array([[0, 0], [4, 0], [0, 3], [9, 9], [3, 3]], np.float64)


def test_similar_takes_the_points_nearest_the_centroid_nearest_first():
    # distances to (3.2, 3): E 0.2, C 3.2, B 3.1, A 4.4, D 8.3
    assert select_similar(POINTS, 3) == [4, 1, 2]
    assert select_similar(POINTS, 10) == [4, 1, 2, 0, 3]  # more than there are: all of them


def test_diverse_is_k_center_greedy():
    # Start at E (nearest the centroid); farthest from {E} is D (8.49); then the point whose
    # nearest chosen one is farthest: A (4.24 from E), then B (3.16 from E), then C (3.0).
    assert select_diverse(POINTS, 5) == [4, 3, 0, 1, 2]


def _radius(points: np.ndarray, centres: list[int]) -> float:
    return float(np.max(np.min(np.linalg.norm(points[:, None] - points[None, centres], axis=2), axis=1)))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_diverse_covering_radius_is_within_twice_the_optimum(k):
    rng = np.random.default_rng(k)
    points = np.concatenate([rng.normal(c, 0.3, (6, 2)) for c in ((0, 0), (5, 0), (0, 5), (6, 6))])
    best = min(_radius(points, list(c)) for c in itertools.combinations(range(len(points)), k))
    assert _radius(points, select_diverse(points, k)) <= 2 * best + 1e-9


def test_diverse_never_repeats_duplicates():
    points = np.zeros((4, 2))
    assert sorted(select_diverse(points, 4)) == [0, 1, 2, 3]


def test_random_is_seeded_and_without_replacement():
    first = select_random(50, 10, seed=3)
    assert first == select_random(50, 10, seed=3) and len(set(first)) == 10
    assert first != select_random(50, 10, seed=4)
    assert sorted(select_random(5, 9, seed=0)) == [0, 1, 2, 3, 4]


def test_dispatch_needs_features_for_feature_methods():
    assert select(CalibSelect.SIMILAR, 2, count=5, features=POINTS, seed=0) == [4, 1]
    with pytest.raises(ValueError, match="one feature row per image"):
        select(CalibSelect.DIVERSE, 2, count=5, features=None, seed=0)


def test_nncf_subset_size_counts_items_not_images():
    assert nncf_subset_size(300) == 300  # leanvision feeds one image per item
    assert nncf_subset_size(300, batch_size=8) == 38
    assert nncf_subset_size(1, batch_size=8) == 1
    with pytest.raises(ValueError):
        nncf_subset_size(0)


def test_modes_given_as_strings_become_enums():
    import dataclasses

    from leanvision.compression.quantize.options import (
        BudgetOptions,
        CalibrationOptions,
        CalibSelect,
        Fallback,
        QuantizeOptions,
    )

    options = QuantizeOptions(calibration=dataclasses.replace(CalibrationOptions(), select="similar"),
                              budget=BudgetOptions(fallback="bf16"))
    assert options.calibration.select is CalibSelect.SIMILAR and options.budget.fallback is Fallback.BF16
    with pytest.raises(ValueError):
        CalibrationOptions(select="nearest")
    grouped = QuantizeOptions.from_dict({"calibration": {"select": "diverse"}, "advanced": {"preset": "mixed"}})
    assert grouped.calibration.select is CalibSelect.DIVERSE and grouped.advanced.nncf_preset.value == "mixed"
    assert QuantizeOptions().with_overrides(["budget.max_drop=0.5"]).budget.max_drop == 0.5
