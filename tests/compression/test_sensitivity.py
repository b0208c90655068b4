"""Output error, SQNR and the layer ranking on a fake switchable model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from leanvision.compression.quantize.groups import Node
from leanvision.compression.quantize.sensitivity import output_error, rank_layers, sqnr_db


def test_output_error_is_the_mean_noise_to_signal_ratio():
    ref = {"a": np.array([3.0, 4.0]), "b": np.array([1.0, 0.0])}
    got = {"a": np.array([3.0, 3.0]), "b": np.array([1.0, 1.0])}
    # a: 1 / 25, b: 1 / 1
    assert output_error(ref, got, ["a", "b"]) == pytest.approx((1 / 25 + 1) / 2)
    assert sqnr_db(0.01) == pytest.approx(20.0) and math.isinf(sqnr_db(0.0))


def test_the_layer_whose_noise_is_largest_ranks_first():
    rng = np.random.default_rng(0)
    reference = {"out": rng.normal(size=(2, 50))}
    noise = {i: rng.normal(size=(2, 50)) * scale for i, scale in enumerate([0.01, 0.3, 0.05])}
    layers = [Node(f"l{i}", f"l{i}", "Conv", "g", True) for i in range(3)]

    def run(mask: np.ndarray) -> dict[str, np.ndarray]:
        return {"out": reference["out"] + sum(n for i, n in noise.items() if not mask[i])}

    result = rank_layers(run, reference, layers, images=2)
    assert result.order() == ["l1", "l2", "l0"]
    assert result.layers[0].gain > result.layers[1].gain > result.layers[2].gain > 0
    assert result.error_all == pytest.approx(output_error(reference, run(np.zeros(3, bool)), ["out"]))
