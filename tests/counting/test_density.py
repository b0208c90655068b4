"""Density maps: sums equal the point count after generation and downsampling; kernels and
sigmas against hand computations; `DensityMap` geometry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanvision.core import DensityKernel, DensityMap, DensitySpec, ResizeMode
from leanvision.core.letterbox import fit
from leanvision.data.density import adaptive_sigmas, density_map, density_target, sum_pool

FIXED = DensitySpec(kernel=DensityKernel.FIXED, sigma=3.0)
ADAPTIVE = DensitySpec()


@pytest.mark.parametrize("spec", [FIXED, ADAPTIVE], ids=["fixed", "adaptive"])
def test_map_sums_to_the_count_with_heads_on_every_border(spec):
    points = np.array([[0, 0], [63.9, 0], [0, 47.99], [64, 48], [32.5, 0.1], [0.2, 20], [31.7, 24.2],
                       [31.7, 24.2], [10, 47]], np.float32)  # corners, edges, a duplicate pair
    density = density_map(points, 48, 64, spec)
    assert density.shape == (48, 64) and density.dtype == np.float32
    assert density.sum(dtype=np.float64) == pytest.approx(len(points), abs=1e-3)
    assert density.min() >= 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 40), st.floats(0, 30)), max_size=60),
       st.sampled_from([FIXED, ADAPTIVE, DensitySpec(sigma=25.0, beta=1.0, k=1)]))
def test_any_points_sum_to_their_count_before_and_after_pooling(points, spec):
    pts = np.array(points, np.float32).reshape(-1, 2)
    density = density_map(pts, 30, 40, spec)
    assert density.sum(dtype=np.float64) == pytest.approx(len(pts), abs=1e-3)
    for stride in (1, 3, 8):
        assert sum_pool(density, stride).sum(dtype=np.float64) == pytest.approx(len(pts), abs=1e-3)


def test_an_empty_image_has_an_all_zero_map():
    assert not density_target(np.zeros((0, 2)), 20, 30).any()
    assert density_target(np.zeros((0, 2)), 20, 30).shape == (3, 4)


def test_fixed_kernel_away_from_the_border_is_the_sampled_gaussian():
    """A head at (20.5, 15.5) (a pixel centre): weights exp(-d^2 / 2 sigma^2) over the 3 sigma
    window, normalised to 1, by hand."""
    sigma = 2.0
    density = density_map(np.array([[20.5, 15.5]]), 40, 50, DensitySpec(kernel="fixed", sigma=sigma))
    offsets = np.arange(-6, 7, dtype=np.float64)
    g = np.exp(-offsets**2 / (2 * sigma**2))
    expected = np.zeros((40, 50))
    expected[9:22, 14:27] = np.outer(g, g) / np.outer(g, g).sum()
    np.testing.assert_allclose(density, expected, atol=1e-7)


def test_a_kernel_cut_by_the_border_keeps_its_mass_inside():
    density = density_map(np.array([[0.5, 0.5]]), 30, 30, DensitySpec(kernel="fixed", sigma=4.0))
    assert density.sum() == pytest.approx(1.0, abs=1e-6)
    assert density[0, 0] == density.max()  # the peak stays at the head


def test_adaptive_sigma_is_beta_times_mean_distance_to_k_nearest_by_brute_force():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (25, 2))
    distances = np.linalg.norm(points[:, None] - points[None], axis=2)
    nearest = np.sort(distances, axis=1)[:, 1:4]
    np.testing.assert_allclose(adaptive_sigmas(points, DensitySpec(beta=0.3, k=3)), 0.3 * nearest.mean(1), rtol=1e-9)


def test_adaptive_sigma_with_few_heads_and_duplicates():
    spec = DensitySpec(beta=0.3, k=3, sigma=5.0, min_sigma=0.5)
    assert adaptive_sigmas(np.array([[3.0, 4.0]]), spec).tolist() == [5.0]  # a lone head: the fixed sigma
    pair = adaptive_sigmas(np.array([[0.0, 0.0], [30.0, 40.0]]), spec)  # one neighbour, 50 px away
    np.testing.assert_allclose(pair, [15.0, 15.0])
    same = adaptive_sigmas(np.array([[1.0, 1.0], [1.0, 1.0]]), spec)
    np.testing.assert_allclose(same, [0.5, 0.5])  # distance 0: the floor


def test_points_outside_the_image_are_refused():
    with pytest.raises(ValueError, match="must lie in the 10x8 image"):
        density_map(np.array([[10.5, 2.0]]), 8, 10)


def test_sum_pool_adds_blocks_and_keeps_the_partial_last_ones():
    density = np.arange(7 * 10, dtype=np.float32).reshape(7, 10)
    pooled = sum_pool(density, 4)
    assert pooled.shape == (2, 3)
    assert pooled[0, 0] == density[:4, :4].sum() and pooled[1, 2] == density[4:, 8:].sum()
    assert pooled.sum() == density.sum()


def test_density_map_geometry_from_a_letterboxed_model_output():
    """An 300 x 100 image letterboxed into a 64 x 96 input: scale 0.32, content 32 x 96,
    so 4 of the 8 output rows cover the image; strides become 8 / 0.32 = 25 px."""
    transform = fit((100, 300), (64, 96), ResizeMode.LETTERBOX)
    output = np.ones((8, 12), np.float32)
    dm = DensityMap.from_model_output(output, transform, 8)
    assert dm.shape == (4, 12) and dm.count == 48.0
    assert dm.stride == pytest.approx((300 / 96 * 8, 100 / 32 * 8))


def test_density_map_accepts_a_channel_axis_and_checks_shapes():
    dm = DensityMap(np.full((1, 3, 4), 0.5), 8)
    assert dm.shape == (3, 4) and dm.count == 6.0 and dm.stride == (8.0, 8.0)
    assert dm.crop(17, 9).shape == (2, 3)  # 9 px need 2 rows of 8, 17 px 3 columns
    with pytest.raises(ValueError, match="stride"):
        DensityMap(np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match="density map is"):
        DensityMap(np.zeros((2, 2, 2)), 8)
