"""Numpy decode equals torchvision: AnchorGenerator, BoxCoder and RetinaNet.postprocess_detections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.detection import RetinaNet
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead

from leanvision.core import AnchorSpec, BoxCoderSpec, Detections, PostprocessSpec
from leanvision.runtime.decode import (
    decode_boxes,
    decode_candidates,
    feature_sizes,
    generate_anchors,
)
from leanvision.runtime.detect import PostprocessOptions, suppress
from tests.runtime.tiny_retinanet import TinyBackbone


def torchvision_anchors(spec: AnchorSpec, input_hw, grids) -> np.ndarray:
    generator = AnchorGenerator(spec.sizes, spec.aspect_ratios)
    images = ImageList(torch.zeros(1, 3, *input_hw), [tuple(input_hw)])
    maps = [torch.zeros(1, 1, h, w) for h, w in grids]
    return generator(images, maps)[0].numpy()


ANCHOR_CASES = {
    # RetinaNet's own: 3 scales x 3 ratios, 5 levels, 256 px (every stride a power of two).
    "retinanet-256": (
        (256, 256),
        tuple((s, s * 2 ** (1 / 3), s * 2 ** (2 / 3)) for s in (32, 64, 128, 256, 512)),
        ((0.5, 1.0, 2.0),) * 5,
        ((32, 32), (16, 16), (8, 8), (4, 4), (2, 2)),
    ),
    # 800 px with a 13-cell P6: torchvision's stride is 800 // 13 = 61, not 64.
    "p6-800": ((800, 800), ((32,), (512,)), ((1.0,), (0.5, 2.0)), ((100, 100), (13, 13))),
    # 100 px with 13 cells (stride 7) and non-square input, odd ratios, half-pixel sizes.
    "odd-100x150": ((100, 150), ((7, 11.5), (24,)), ((0.3, 1.0, 1.7), (1.0,)), ((13, 19), (4, 5))),
}


@pytest.mark.parametrize("name", ANCHOR_CASES)
def test_anchors_equal_torchvision_anchor_generator(name):
    input_hw, sizes, ratios, grids = ANCHOR_CASES[name]
    spec = AnchorSpec(sizes, ratios, strides=tuple(8 for _ in grids), feature_sizes=grids)
    ours = np.concatenate(generate_anchors(spec, input_hw))
    np.testing.assert_array_equal(ours, torchvision_anchors(spec, input_hw, grids))


def test_feature_sizes_default_to_ceil_of_input_over_stride():
    # Without measured sizes, ceil(input / stride): what stride-2 3x3 padding-1 convs give.
    spec = AnchorSpec(((32,),) * 3, ((1.0,),) * 3, strides=(8, 16, 32))
    with torch.no_grad():
        real = [tuple(f.shape[-2:]) for f in TinyBackbone()(torch.zeros(1, 3, 225, 199)).values()]
    assert feature_sizes(spec, (225, 199)) == tuple(real) == ((29, 25), (15, 13), (8, 7))


def test_box_decoding_equals_box_coder_including_the_clamp():
    rng = np.random.default_rng(0)
    anchors = np.concatenate([rng.uniform(0, 100, (500, 2)), rng.uniform(101, 300, (500, 2))], axis=1).astype(np.float32)
    deltas = rng.normal(0, 2, (500, 4)).astype(np.float32)
    deltas[:10, 2:] = 50.0  # far above log(1000 / 16): clamped, not overflowed
    for weights in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
        coder = BoxCoder(weights)
        expected = coder.decode_single(torch.from_numpy(deltas), torch.from_numpy(anchors)).numpy()
        ours = decode_boxes(deltas, anchors, BoxCoderSpec(weights=weights, clamp=coder.bbox_xform_clip))
        assert np.isfinite(ours).all()
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-3)


def small_retinanet(*, topk: int, num_classes: int = 3) -> RetinaNet:
    generator = AnchorGenerator(((32, 40), (64, 80), (128, 160)), ((0.5, 1.0, 2.0),) * 3)
    head = RetinaNetHead(16, generator.num_anchors_per_location()[0], num_classes)
    return RetinaNet(
        TinyBackbone(), num_classes, anchor_generator=generator, head=head,
        score_thresh=0.05, nms_thresh=0.5, detections_per_img=100, topk_candidates=topk,
    ).eval()


@pytest.mark.parametrize("input_hw", [(256, 256), (224, 200)])
@pytest.mark.parametrize("topk", [40, 2000])  # 2000: > 1000 boxes, torchvision's per-class NMS path
def test_decode_and_nms_equal_torchvision_postprocess_detections(input_hw, topk):
    torch.manual_seed(0)
    model = small_retinanet(topk=topk)
    with torch.no_grad():
        features = list(model.backbone(torch.zeros(2, 3, *input_hw)).values())
    grids = tuple(tuple(f.shape[-2:]) for f in features)
    per_level = [h * w * 6 for h, w in grids]
    total = sum(per_level)
    rng = np.random.default_rng(1)
    logits = rng.normal(-3.0, 1.5, (2, total, 3)).astype(np.float32)
    deltas = rng.normal(0, 0.4, (2, total, 4)).astype(np.float32)

    images = ImageList(torch.zeros(2, 3, *input_hw), [input_hw] * 2)
    anchors = model.anchor_generator(images, features)
    head = {"cls_logits": list(torch.from_numpy(logits).split(per_level, 1)),
            "bbox_regression": list(torch.from_numpy(deltas).split(per_level, 1))}
    expected = model.postprocess_detections(head, [list(a.split(per_level)) for a in anchors], images.image_sizes)

    spec = AnchorSpec(model.anchor_generator.sizes, model.anchor_generator.aspect_ratios, (8, 16, 32), grids)
    options = PostprocessOptions.from_card(PostprocessSpec(
        score_threshold=0.05, iou_threshold=0.5, topk_candidates=topk, max_detections=100))
    ours_anchors = generate_anchors(spec, input_hw)
    for i, exp in enumerate(expected):
        cand = decode_candidates(logits[i], deltas[i], ours_anchors, BoxCoderSpec(),
                                 score_threshold=0.05, topk=topk, clip_hw=input_hw)
        keep, scores = suppress(cand, options)
        ours = Detections(cand.boxes[keep], scores, cand.labels[keep])
        assert len(ours) == len(exp["boxes"]) > 50
        np.testing.assert_array_equal(ours.labels, exp["labels"].numpy())
        np.testing.assert_allclose(ours.boxes, exp["boxes"].numpy(), atol=1e-3, rtol=0)
        np.testing.assert_allclose(ours.scores, exp["scores"].numpy(), atol=1e-6, rtol=0)
