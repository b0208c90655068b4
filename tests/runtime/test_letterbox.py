"""core.letterbox: fit geometry and the box round trip (tested here, with the runtime that uses it)."""

from __future__ import annotations

import numpy as np
import pytest

from leanvision.core import ResizeMode
from leanvision.core.letterbox import fit


def test_stretch_scales_each_axis_without_padding():
    t = fit((100, 200), (50, 50), ResizeMode.STRETCH)
    assert (t.scale_x, t.scale_y, t.pad_x, t.pad_y, t.resized_hw) == (0.25, 0.5, 0, 0, (50, 50))


def test_letterbox_keeps_aspect_and_pads_right_and_bottom():
    wide = fit((100, 200), (64, 64), ResizeMode.LETTERBOX)  # 2:1 image in a square input
    assert wide.resized_hw == (32, 64) and (wide.pad_x, wide.pad_y) == (0, 32)
    assert wide.scale_x == wide.scale_y == 0.32
    tall = fit((300, 100), (90, 60), ResizeMode.LETTERBOX)
    assert tall.resized_hw == (90, 30) and (tall.pad_x, tall.pad_y) == (30, 0)


def test_letterbox_scales_are_those_of_the_rounded_size():
    t = fit((333, 500), (100, 100), ResizeMode.LETTERBOX)  # 333 * 0.2 = 66.6 -> 67 rows
    assert t.resized_hw == (67, 100)
    assert t.scale_y == 67 / 333 and t.scale_x == 100 / 500
    corners = t.invert_boxes(np.array([[0, 0, 100, 67]]))
    np.testing.assert_allclose(corners, [[0, 0, 500, 333]], rtol=1e-6)


@pytest.mark.parametrize("mode", list(ResizeMode))
@pytest.mark.parametrize("src", [(480, 640), (640, 480), (37, 1000), (800, 800)])
def test_apply_then_invert_is_the_identity(mode, src):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1, (20, 2, 2)) * np.array(src[::-1])
    boxes = np.concatenate([xy.min(1), xy.max(1)], axis=1)
    t = fit(src, (320, 256), mode, 0.3 if mode is ResizeMode.SCALE else None)
    np.testing.assert_allclose(t.invert_boxes(t.apply_boxes(boxes)), boxes, rtol=1e-5, atol=1e-3)
    # Within the resized image (beyond the input where centre crop cuts it).
    assert t.apply_boxes(boxes)[:, 2].max() <= t.resized_hw[1] - t.crop_x + 1e-3
    assert t.apply_boxes(boxes)[:, 3].max() <= t.resized_hw[0] - t.crop_y + 1e-3


@pytest.mark.parametrize("bad", [(0, 10), (10, -1)])
def test_empty_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="positive"):
        fit(bad, (10, 10), ResizeMode.STRETCH)
    with pytest.raises(ValueError, match="positive"):
        fit((10, 10), bad, ResizeMode.LETTERBOX)


def test_scale_mode_keeps_the_trained_scale_and_pads():
    # S0: an 800 px tile at scale 0.5 becomes 400 px of image in an 800 px input.
    t = fit((800, 800), (800, 800), ResizeMode.SCALE, 0.5)
    assert (t.scale_x, t.scale_y, t.pad_x, t.pad_y, t.resized_hw) == (0.5, 0.5, 400, 400, (400, 400))
    # A 1600 px window fills the input exactly.
    assert fit((1600, 1600), (800, 800), ResizeMode.SCALE, 0.5).pad_x == 0
    # Too large for the input at that scale: letterboxed instead.
    big = fit((4000, 2000), (800, 800), ResizeMode.SCALE, 0.5)
    assert big.scale_x == pytest.approx(0.2) and big.resized_hw == (800, 400)
    with pytest.raises(ValueError, match="positive scale"):
        fit((10, 10), (8, 8), ResizeMode.SCALE)
