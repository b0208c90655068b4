"""`model.auto_anchors`: a detector whose anchors miss the training boxes is rebuilt with
anchors fitted to them, and the run records the anchors it trained with."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from leanvision.core import Detections
from leanvision.data.formats import DetectionSet, ImageRecord
from leanvision.models import create_model
from leanvision.training import model_from_checkpoint, train
from leanvision.training.config import (
    AmpMode,
    AugmentOptions,
    DataOptions,
    EmaOptions,
    ModelOptions,
)
from leanvision.training.data import TrainData
from leanvision.training.tasks.detect import DetectAdapter
from tests.training.conftest import SIZE, tiny_config


def _data(side: float) -> TrainData:
    boxes = np.array([[4, 4, 4 + side, 4 + side], [30, 30, 30 + side, 30 + side]], np.float32)
    record = ImageRecord("a.png", SIZE, SIZE, Detections.from_boxes(boxes, [0, 0]), 1)
    return TrainData(DetectionSet(("square",), [record], None), None, ("square",), [])


@pytest.fixture(scope="module")
def slim():
    return create_model("retinanet_mbv2_slim", num_classes=1)


def _overrides(model, side: float, augment: AugmentOptions | None = None, **options) -> dict:
    data_options = DataOptions(train="unused", input_size=(SIZE, SIZE))
    return DetectAdapter().model_overrides(model, ModelOptions(auto_anchors=True, **options), _data(side), data_options,
                                           augment or AugmentOptions())


def test_anchors_that_miss_small_boxes_are_refit(slim):
    fitted = _overrides(slim, 12.0)
    sizes = fitted["anchor_sizes"]
    assert len(sizes) == 5 and min(sizes[0]) < 24 and fitted["aspect_ratios"] == [[0.5, 1.0, 2.0]] * 5


def test_anchors_that_reach_the_boxes_are_kept(slim):
    assert _overrides(slim, 40.0) == {}


def test_anchors_the_recipe_sets_are_kept_and_the_option_is_off_by_default(slim):
    assert _overrides(slim, 12.0, overrides={"anchor_sizes": [[32, 40, 50]] * 5}) == {}
    data_options = DataOptions(train="unused", input_size=(SIZE, SIZE))
    assert DetectAdapter().model_overrides(slim, ModelOptions(), _data(12.0), data_options, AugmentOptions()) == {}


def test_boxes_are_measured_at_the_scale_a_fixed_scale_crop_gives_them(slim):
    """40 px boxes are reached by torchvision's anchors; an 800 -> 400 crop makes them 20 px, which are not."""
    halving = AugmentOptions(steps=({"op": "online_crop_resize", "crop": 64, "size": 32},))
    assert _overrides(slim, 40.0) == {} and _overrides(slim, 40.0, halving) != {}


def test_a_run_trains_with_the_fitted_anchors_and_its_checkpoint_rebuilds_them(squares_data, tmp_path):
    """The squares (10-21 px at 64 px) are below torchvision's 32 px anchors at IoU 0.5."""
    # fp32: bf16 autocast (amp auto on an AMX CPU) made this RetinaNet's gradients inf in 4 of 6 runs.
    config = tiny_config(squares_data, tmp_path / "run", epochs=1, ema=EmaOptions(enabled=False), amp=AmpMode.OFF,
                         model=ModelOptions(name="retinanet_mbv2_slim", auto_anchors=True))
    train(config, progress=False)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]["overrides"]
    assert min(saved["anchor_sizes"][0]) < 21
    model, card = model_from_checkpoint(tmp_path / "run" / "last.pt")
    assert [list(s) for s in model.anchor_sizes] == saved["anchor_sizes"]
    assert [list(s) for s in card.anchors.sizes] == saved["anchor_sizes"]


def test_a_run_records_crop_windows_fitted_to_its_images(squares_data, tmp_path):
    """256 px windows (128 px inputs) on 64 px images: the run trains on 64 px windows into
    32 px inputs, the scale kept, and its config.yaml and card say so."""
    from tests.training.conftest import tiny_factory

    config = tiny_config(squares_data, tmp_path / "run", epochs=1, ema=EmaOptions(enabled=False), amp=AmpMode.OFF,
                         augment=AugmentOptions(steps=({"op": "online_crop_resize", "crop": 256, "size": 128},)))
    config = config.replace(data=dataclasses.replace(config.data, input_size=(128, 128)))
    train(config, model_factory=tiny_factory, progress=False)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["augment"]["steps"] == [{"op": "online_crop_resize", "crop": 64, "size": 32}]
    assert saved["data"]["input_size"] == [32, 32]
