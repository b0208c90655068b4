"""`--with-nms`: decode + NMS in the graph agree with torch and with the numpy runtime path."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch

from leanvision.core import ConfigError, Detections, NmsKind
from leanvision.export.nms_graph import DetectWithNms
from leanvision.export.parity import detection_counts, synthetic_images
from leanvision.runtime import load_predictor
from tests.export.slim import CLASSES, INPUT_HW
from tests.runtime.tiny_retinanet import synthetic_images as varied_images


def normalised(images: list[np.ndarray]) -> torch.Tensor:
    batch = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)
    mean = np.array([123.675, 116.28, 103.53], np.float32)[:, None, None]
    std = np.array([58.395, 57.12, 57.375], np.float32)[:, None, None]
    return torch.from_numpy((batch - mean) / std)


def assert_same(ref: list[Detections], got: list[Detections]) -> None:
    """Same detections, same order: boxes within 1e-3 px, scores within 1e-5, same labels."""
    assert sum(len(d) for d in ref) > 0
    for r, g in zip(ref, got, strict=True):
        assert len(r) == len(g)
        np.testing.assert_array_equal(r.labels, g.labels)
        np.testing.assert_allclose(g.boxes, r.boxes, atol=1e-3)
        np.testing.assert_allclose(g.scores, r.scores, atol=1e-5)


def in_graph_detections(module: DetectWithNms, batch: torch.Tensor) -> list[Detections]:
    with torch.no_grad():
        boxes, scores, labels, counts = module(batch)
    return [Detections(b[:n].numpy(), s[:n].numpy(), lab[:n].numpy())
            for b, s, lab, n in zip(boxes, scores, labels, counts.tolist(), strict=True)]


def test_the_in_graph_module_equals_torchvision_postprocessing(slim):
    """Eager, no export: top-k, decode, clip and per-class NMS as torchvision's RetinaNet does."""
    card = slim.card(class_names=CLASSES, input_size=INPUT_HW)
    batch = normalised(synthetic_images(2, INPUT_HW, seed=3))
    assert_same(slim.detect(batch), in_graph_detections(DetectWithNms(slim, card).eval(), batch))
    few = card.replace(postprocess=dataclasses.replace(card.postprocess, max_detections=7, iou_threshold=0.3))
    got = in_graph_detections(DetectWithNms(slim, few).eval(), batch)
    assert_same(slim.detect(batch, max_detections=7, iou_threshold=0.3), got)
    assert [len(d) for d in got] == [7, 7]


def test_in_graph_nms_refuses_soft_nms(slim):
    card = slim.card(class_names=CLASSES, input_size=INPUT_HW)
    soft = card.replace(postprocess=dataclasses.replace(card.postprocess, nms=NmsKind.SOFT_GAUSSIAN))
    with pytest.raises(ConfigError, match="hard NMS"):
        DetectWithNms(slim, soft)


@pytest.mark.slow
def test_exported_nms_graph_has_fixed_outputs_and_says_so(nms_export):
    card = nms_export.card
    assert [(o.name, o.layout) for o in card.outputs] == [
        ("boxes", "N,K,4"), ("scores", "N,K"), ("labels", "N,K"), ("num_detections", "N")]
    assert card.provenance["with_nms"] == "true"
    graph = onnx.load(str(nms_export.out / "model.onnx")).graph
    assert [n.op_type for n in graph.node].count("NonMaxSuppression") == 1
    assert nms_export.parity.passed and nms_export.parity.detection_agreement == 1.0
    assert set(nms_export.parity.runs[0].max_abs_diff) == {"scores"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_in_graph_nms_agrees_with_the_numpy_path(nms_export, onnx_export, backend):
    images = varied_images(4, seed=2)  # other sizes than the input: the resize is undone
    in_graph = load_predictor(nms_export.out, backend=backend)
    assert in_graph.nms_in_graph
    numpy_path = load_predictor(onnx_export.out, backend=backend)
    ref, got = numpy_path(images), in_graph(images)
    assert sum(len(d) for d in ref) > 0
    spec = nms_export.card.postprocess
    torch_n, runtime_n, matched_t, matched_r = detection_counts(
        ref, got, nms_export.parity.tolerance, threshold=spec.score_threshold, max_detections=spec.max_detections)
    assert matched_t == torch_n > 0 and matched_r == runtime_n


@pytest.mark.slow
def test_in_graph_nms_takes_only_overrides_it_can_honour(nms_export):
    images = varied_images(2, seed=4)
    strict = load_predictor(nms_export.out, overrides={"score_threshold": 0.07, "max_detections": 5})(images)
    assert all(len(d) <= 5 and (d.scores > 0.07).all() for d in strict)
    for override in ({"score_threshold": 0.01}, {"nms": "matrix"}, {"iou_threshold": 0.3}, {"max_detections": 1000}):
        with pytest.raises(ConfigError, match="cannot apply: this model has decode and NMS in its graph"):
            load_predictor(nms_export.out, overrides=override)
