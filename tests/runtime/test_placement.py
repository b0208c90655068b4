"""Placing pixels as `core.letterbox.fit` says (`runtime.preprocess.place`, `fit_to_input`, `place_image`),
centre crop's geometry, and the consumers that refuse centre crop."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from leanvision.core import (
    ConfigError,
    DensityMap,
    InputSpec,
    ModelCard,
    OutputSpec,
    ResizeMode,
    Task,
)
from leanvision.core.letterbox import fit
from leanvision.runtime.preprocess import fit_to_input, place_image, prepare_images

PAD = 114


def test_stretch_fills_the_input_and_keeps_left_and_right():
    image = np.zeros((20, 10, 3), np.uint8)
    image[:, 5:] = 255  # left half black, right half white
    out, transform = fit_to_input(image, (32, 32), ResizeMode.STRETCH, pad_value=PAD)
    assert out.shape == (32, 32, 3) and (transform.pad_x, transform.pad_y) == (0, 0)
    assert (out[:, :14] == 0).all() and (out[:, 18:] == 255).all()
    assert np.abs(out.astype(int) - out[:1]).max() <= 1  # rows alike (OpenCV's fixed-point rounding)


def test_letterbox_keeps_aspect_and_pads_right_and_bottom():
    image = np.full((40, 100, 3), 200, np.uint8)  # 0.64 x 40 = 25.6 -> 26 rows
    out, transform = fit_to_input(image, (64, 64), ResizeMode.LETTERBOX, pad_value=PAD)
    assert transform.resized_hw == (26, 64) and transform.pad_y == 38
    assert (out[:26] == 200).all() and (out[26:] == PAD).all()


def test_center_crop_keeps_the_middle():
    rows = np.arange(100, dtype=np.float64)
    image = np.repeat((2 * rows)[:, None, None], 40 * 3, axis=1).reshape(100, 40, 3).astype(np.uint8)
    out, transform = fit_to_input(image, (32, 32), ResizeMode.CENTER_CROP, pad_value=PAD)
    # 100 x 40 scaled by 0.8 covers 32 x 32 as 80 x 32; the middle 32 of its 80 rows stay.
    assert (transform.scale_x, transform.scale_y, transform.resized_hw) == (0.8, 0.8, (80, 32))
    assert (transform.crop_x, transform.crop_y, transform.pad_x, transform.pad_y) == (0, 24, 0, 0)
    # Input row j shows source row (j + 24 + 0.5) / 0.8 - 0.5: rows 30..69 of 0..99, value 2 x row.
    source_row = (np.arange(32) + 24 + 0.5) / 0.8 - 0.5
    np.testing.assert_allclose(out[:, :, 0].astype(float), np.repeat((2 * source_row)[:, None], 32, 1), atol=1)
    assert np.abs(out.astype(int) - out[:, :1]).max() <= 1


def test_center_crop_geometry_cuts_the_odd_pixel_from_the_right():
    t = fit((10, 21), (10, 10), ResizeMode.CENTER_CROP)
    assert t.resized_hw == (10, 21) and (t.crop_x, t.crop_y) == (5, 0) and t.cropped
    square = fit((50, 50), (10, 10), ResizeMode.CENTER_CROP)
    assert (square.scale_x, square.crop_x, square.crop_y, square.cropped) == (0.2, 0, 0, False)


def test_center_crop_box_round_trip():
    t = fit((100, 40), (32, 32), ResizeMode.CENTER_CROP)
    # The whole input is source rows 30..70, every column.
    np.testing.assert_allclose(t.invert_boxes(np.array([[0, 0, 32, 32]])), [[0, 30, 40, 70]], atol=1e-4)
    boxes = np.array([[5, 40, 20, 60], [0, 0, 40, 100]], np.float32)
    np.testing.assert_allclose(t.apply_boxes(boxes), [[4, 8, 16, 24], [0, -24, 32, 56]], atol=1e-4)
    np.testing.assert_allclose(t.invert_boxes(t.apply_boxes(boxes)), boxes, atol=1e-4)


@pytest.mark.parametrize("mode", [ResizeMode.STRETCH, ResizeMode.LETTERBOX, ResizeMode.CENTER_CROP])
def test_prepare_images_places_pixels_as_fit_to_input(mode):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in [(100, 40), (30, 70), (48, 48)]]
    spec = InputSpec(height=32, width=48, resize=mode, pad_value=PAD, dtype="uint8")
    prepared = prepare_images(images, spec)
    for row, image, transform in zip(prepared.batch, images, prepared.transforms, strict=True):
        expected, same = fit_to_input(image, (32, 48), mode, pad_value=PAD)
        assert same == transform
        np.testing.assert_array_equal(row.transpose(1, 2, 0), expected)
        np.testing.assert_array_equal(place_image(image, spec), expected)


def test_a_whole_image_tile_read_at_the_input_size_passes_under_center_crop():
    spec = InputSpec(height=32, width=32, resize=ResizeMode.CENTER_CROP)
    prepared = prepare_images([np.full((32, 32, 3), 7, np.uint8)], spec, at_input_scale=True)
    assert prepared.batch.shape == (1, 3, 32, 32)


def test_center_crop_is_refused_on_large_image_tiles():
    spec = InputSpec(height=32, width=32, resize=ResizeMode.CENTER_CROP)
    with pytest.raises(ConfigError, match=r"center_crop.*tiles"):
        prepare_images([np.zeros((40, 32, 3), np.uint8)], spec, at_input_scale=True)


def test_a_density_map_refuses_a_cropped_input():
    with pytest.raises(ValueError, match="centre-cropped"):
        DensityMap.from_model_output(np.zeros((4, 4)), fit((100, 40), (32, 32), ResizeMode.CENTER_CROP), 8)


def _card(task: Task, **fields) -> ModelCard:
    spec = InputSpec(height=32, width=32, resize=ResizeMode.CENTER_CROP)
    return ModelCard(name="cropped", task=task, class_names=("a",), input=spec,
                     outputs=(OutputSpec("out", "N,C"),), **fields)


def test_detectors_and_counters_refuse_center_crop():
    from leanvision.core import AnchorSpec, BoxCoderSpec
    from leanvision.runtime import CountPredictor, DetectionPredictor

    engine = SimpleNamespace(path=Path("model.onnx"))  # refused before the engine is used
    anchors = AnchorSpec(sizes=((32.0,),), aspect_ratios=((1.0,),), strides=(8,))
    with pytest.raises(ConfigError, match="detector cannot use resize 'center_crop'"):
        DetectionPredictor(engine, _card(Task.DETECT, anchors=anchors, box_coder=BoxCoderSpec()))
    with pytest.raises(ConfigError, match="counting model cannot use resize 'center_crop'"):
        CountPredictor(engine, _card(Task.COUNT, output_stride=8))
