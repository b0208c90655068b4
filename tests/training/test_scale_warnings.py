"""The warnings a detection run gives before training when the recipe's scale does not suit
the data: S0's recipe (800 px windows at scale 0.5, made for large slides) on 640x480
photos with 20 px objects."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from leanvision.core import Detections
from leanvision.data.formats import DetectionSet, ImageRecord
from leanvision.training import load_config
from leanvision.training.tasks.detect import build_detection_augmentation, scale_warnings

S0 = Path(__file__).resolve().parents[2] / "configs" / "s0_cervical_retinanet.yaml"


def _photos(width: int, height: int, sides: dict[str, float]) -> DetectionSet:
    """Four images, each with one box per class of the given side."""
    records = []
    for i in range(4):
        boxes = np.array([[10.0, 10.0, 10.0 + side, 10.0 + side] for side in sides.values()], np.float32)
        records.append(ImageRecord(f"{i}.jpg", width, height, Detections.from_boxes(boxes, list(range(len(sides)))),
                                   i + 1))
    return DetectionSet(tuple(sides), records, Path("images"))


def test_s0_recipe_on_small_photos_names_the_tiny_class_and_the_padding():
    config = load_config(S0)
    warnings = scale_warnings(_photos(640, 480, {"platelet": 20.0, "wbc": 150.0}), config.data, config.augment)
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("class 'platelet': its boxes are 10 px (median side) at the training scale 0.5")
    assert "about 52% of each training input is padding" in warnings[1]


def test_s0_recipe_on_its_own_tiles_says_nothing():
    config = load_config(S0)
    assert scale_warnings(_photos(800, 800, {"abnormal": 76.0}), config.data, config.augment) == []
    at_scale_1 = dataclasses.replace(config.data, scale=1.0)
    steps = [dict(s, crop=640, size=640) if s["op"] == "online_crop_resize" else s for s in config.augment.steps]
    augment = dataclasses.replace(config.augment, steps=type(config.augment.steps)(steps))
    assert scale_warnings(_photos(640, 480, {"platelet": 20.0}), at_scale_1, augment) == []


def test_s0_recipe_without_negative_images_skips_replace_background_and_says_so(tmp_path, caplog):
    """S0 pastes cells onto negative tiles; photos that all hold objects have none: the
    recipe still runs, without that step, and the log says why."""
    from leanvision.core import Task
    from leanvision.data.formats import read_detection
    from leanvision.data.synth import synthesize

    synthesize(Task.DETECT, tmp_path / "blood", images=2, scene="blood")
    config = load_config(S0)
    with caplog.at_level("WARNING"):
        compose = build_detection_augmentation(config.augment, read_detection(tmp_path / "blood" / "train"))
    assert [type(op).__name__ for op in compose] == ["RandomShift", "OnlineCropResize", "RandomFlip"]
    assert "replace_background is skipped: the training set has no negative images" in caplog.text


def test_s0_windows_fit_small_photos_at_the_same_scale():
    """800 px windows on 640x480 photos are a third padding: they shrink to 640 into 320 px
    inputs (the scale stays 0.5, each image still whole in a window), and the padding warning
    no longer applies; S0's own 800 px tiles keep the recipe as it is."""
    from leanvision.training.tasks.detect import fit_windows

    config = load_config(S0)
    photos = _photos(640, 480, {"rbc": 80.0})
    data, augment, note = fit_windows(config.data, config.augment, photos)
    crop = next(step for step in augment.steps if step["op"] == "online_crop_resize")
    assert (crop["crop"], crop["size"], data.input_size) == (640, 320, (320, 320))
    assert [s["op"] for s in augment.steps] == [s["op"] for s in config.augment.steps]
    assert "640 px windows into 320 px inputs instead of 800 into 400" in note
    assert not any("padding" in w for w in scale_warnings(photos, data, augment))
    assert fit_windows(config.data, config.augment, _photos(800, 800, {"abnormal": 76.0})) is None
    odd = _photos(700, 500, {"rbc": 80.0})  # 350 px at scale 0.5: the next multiple of 32 is 352
    data, augment, _ = fit_windows(config.data, config.augment, odd)
    assert data.input_size == (352, 352) and fit_windows(data, augment, odd) is None  # fitting twice changes nothing
