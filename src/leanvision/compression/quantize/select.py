"""Choosing calibration images: seeded random, diverse (k-center greedy), similar (centroid).

S3 (crowd counting, first prize) calibrated its INT8 model on one hand-picked image that
looked like the hard test scenes and beat the usual diverse set: ranges fitted to typical
inputs waste fewer of the 256 levels on rare extremes. `similar` automates that pick as the
images nearest the set's centroid in the model's own feature space; `diverse` is the
opposite bet, the k-center greedy core-set (Sener & Savarese, ICLR 2018) that covers the
feature space. Both are a few lines of numpy, written here because no kept library offers
them on plain arrays.

Features are rows of a (N, D) float array, one image per row; the distance is Euclidean.
Every function returns indices into those rows, in the order they were chosen.
"""

from __future__ import annotations

import numpy as np

from leanvision.compression.quantize.options import CalibSelect


def _check(count: int, k: int) -> int:
    if count < 1:
        raise ValueError("no images to choose from")
    if k < 1:
        raise ValueError(f"need to choose at least one image, got {k}")
    return min(k, count)


def select_random(count: int, k: int, *, seed: int) -> list[int]:
    """`k` of `count` indices, uniformly without replacement; same seed, same choice."""
    k = _check(count, k)
    return [int(i) for i in np.random.default_rng(seed).choice(count, size=k, replace=False)]


def _distances_to(features: np.ndarray, point: np.ndarray) -> np.ndarray:
    return np.linalg.norm(features - point[None, :], axis=1)


def select_similar(features: np.ndarray, k: int) -> list[int]:
    """The `k` rows nearest the centroid (mean row), nearest first; ties by index."""
    features = np.asarray(features, np.float64)
    k = _check(len(features), k)
    distance = _distances_to(features, features.mean(axis=0))
    return [int(i) for i in np.argsort(distance, kind="stable")[:k]]


def select_diverse(features: np.ndarray, k: int) -> list[int]:
    """k-center greedy: start at the row nearest the centroid, then repeatedly take the row
    farthest from everything chosen so far (ties by index).

    The chosen set's covering radius is within 2x of the optimal k-center's.
    """
    features = np.asarray(features, np.float64)
    k = _check(len(features), k)
    first = select_similar(features, 1)[0]
    chosen = [first]
    nearest = _distances_to(features, features[first])
    for _ in range(k - 1):
        nearest[chosen] = -1.0  # never pick a chosen row again, even among duplicates
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, _distances_to(features, features[pick]))
    return chosen


def select(method: CalibSelect, k: int, *, count: int, features: np.ndarray | None, seed: int) -> list[int]:
    """Dispatch on `method`; `features` (count, D) is needed for diverse and similar."""
    if method is CalibSelect.RANDOM:
        return select_random(count, k, seed=seed)
    if features is None or len(features) != count:
        raise ValueError(f"{method.value} selection needs one feature row per image")
    return select_similar(features, k) if method is CalibSelect.SIMILAR else select_diverse(features, k)
