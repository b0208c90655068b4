"""The large-image pipeline with a model trained at a fixed scale (S0: 1600 px windows -> 800 px
inputs): tiles read at the card's scale are not scaled again by the predictor."""

from __future__ import annotations

import dataclasses
import shutil

import cv2
import numpy as np

from leanvision.core import CARD_FILENAME, ModelCard, ResizeMode
from leanvision.core.boxes import box_iou
from leanvision.largeimage.pipeline import PipelineOptions, run_pipeline
from leanvision.runtime import load_predictor
from tests.runtime.conftest import INPUT_HW
from tests.runtime.tiny_retinanet import synthetic_images


def test_one_window_through_the_pipeline_finds_what_the_predictor_finds_on_it(tiny_model_dir, tmp_path):
    model_dir = tmp_path / "scaled"
    shutil.copytree(tiny_model_dir, model_dir)
    card = ModelCard.load(model_dir)
    scaled = dataclasses.replace(card.input, resize=ResizeMode.SCALE, scale=0.5)
    card.replace(input=scaled).save(model_dir / CARD_FILENAME)
    window_h, window_w = 2 * INPUT_HW[0], 2 * INPUT_HW[1]  # one window exactly
    image = cv2.resize(synthetic_images(1)[0], (window_w, window_h), interpolation=cv2.INTER_NEAREST)
    path = tmp_path / "one_window.png"
    cv2.imwrite(str(path), image[:, :, ::-1])
    with load_predictor(model_dir, backend="onnxruntime") as predictor:
        expected = predictor([image])[0]
        summary = run_pipeline(predictor, [path], options=PipelineOptions(readers=1))
    got = summary.results[path].detections
    assert summary.tiles == 1 and len(expected) > 0
    iou = box_iou(expected.boxes, got.boxes) if len(got) else np.zeros((len(expected), 0))
    found = iou.max(axis=1) >= 0.8 if iou.size else np.zeros(len(expected), bool)
    assert found.mean() >= 0.8, f"{found.sum()} of {len(expected)} detections found at the right place"
