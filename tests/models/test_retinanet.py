"""The RetinaNet variants against torchvision's own RetinaNet, module for module."""

import itertools
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v2, resnet50
from torchvision.models.detection import RetinaNet, retinanet_resnet50_fpn
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d, box_iou

from leanvision.core import ConfigError, DataError, ModelCard, Task
from leanvision.models import create_model
from leanvision.models.tasks.detect.retina_loss import retina_losses
from leanvision.models.weights import nest_torchvision_fpn

H, W = 160, 224  # multiples of 32: torchvision's transform neither pads nor resizes them


def _slim(num_classes: int = 2, seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("retinanet_mbv2_slim", num_classes=num_classes, **overrides)


def _spread_outputs(model: nn.Module, seed: int = 1) -> None:
    """Random output biases so many anchors pass the thresholds and NMS and top-k bind."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        cls_bias = model.head.classification_head.cls_logits.bias
        cls_bias.copy_(torch.randn(cls_bias.shape, generator=generator) * 1.5 - 1.0)
        reg_bias = model.head.regression_head.bbox_reg.bias
        reg_bias.copy_(torch.randn(reg_bias.shape, generator=generator) * 0.5)


class _FeaturesAsTorchvisionBackbone(nn.Module):
    """torchvision's RetinaNet expects backbone + FPN in one module returning an OrderedDict."""

    def __init__(self, model: nn.Module, channels: int) -> None:
        super().__init__()
        self.model = model
        self.out_channels = channels

    def forward(self, images):
        return OrderedDict((str(i), f) for i, f in enumerate(self.model.forward_features(images)))


def _torchvision_twin(model: nn.Module, **thresholds) -> RetinaNet:
    """torchvision's RetinaNet sharing `model`'s modules, with an identity transform."""
    return RetinaNet(
        _FeaturesAsTorchvisionBackbone(model, model.fpn.layer_blocks[0][0].out_channels),
        model.num_classes, min_size=min(H, W), max_size=max(H, W), image_mean=[0.0] * 3, image_std=[1.0] * 3,
        anchor_generator=model.anchor_generator, head=model.head, **thresholds,
    )


def _targets() -> list[dict[str, torch.Tensor]]:
    return [
        {"boxes": torch.tensor([[20.0, 30.0, 90.0, 100.0], [120.0, 40.0, 200.0, 150.0]]), "labels": torch.tensor([0, 1])},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)},  # negative image
    ]


@pytest.mark.parametrize("name", ["retinanet_mbv2_slim", "retinanet_mbv2", "retinanet_r50"])
def test_variant_builds_and_forward_matches_anchor_count(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3).eval()
    assert model.task is Task.DETECT
    assert [n for n, _ in model.named_children()][:3] == ["backbone", "fpn", "head"]
    assert dict(model.parts) == {"backbone": "backbone", "fpn": "fpn", "head": "head"}
    images = torch.randn(2, 3, 128, 160)
    with torch.no_grad():
        cls_logits, bbox_regression = model(images)
        features = model.forward_features(images)
        anchors = model.anchors(images, features)
    assert len(features) == 5
    expected = sum(f.shape[-2] * f.shape[-1] * 9 for f in features)
    assert cls_logits.shape == (2, expected, 3) and bbox_regression.shape == (2, expected, 4)
    assert anchors[0].shape == (expected, 4)


def test_slim_structure_is_s0s():
    model = _slim(num_classes=1)
    assert [b[0].in_channels for b in model.fpn.inner_blocks] == [32, 96, 1280]
    assert model.fpn.layer_blocks[0][0].out_channels == 128
    assert model.fpn.extra_blocks.p6.in_channels == 1280 and not model.fpn.extra_blocks.use_P5
    for tower in (model.head.classification_head.conv, model.head.regression_head.conv):
        convs = [m for m in tower.modules() if isinstance(m, nn.Conv2d)]
        assert [(c.in_channels, c.out_channels) for c in convs] == [(128, 64)] + [(64, 64)] * 3
        assert not any(isinstance(m, nn.GroupNorm) for m in tower.modules())
        assert all(c.weight.std() < 0.012 and c.bias.abs().max() == 0 for c in convs)
    prior = model.head.classification_head.cls_logits.bias
    assert torch.allclose(prior, torch.full_like(prior, -math.log(99)))
    norms = [m for m in model.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(type(m) is nn.BatchNorm2d and m.weight.requires_grad for m in norms)  # S0: BN trains


def test_head_convs_option_keeps_torchvisions_first_layers_and_keys():
    model = _slim(num_classes=1, head_convs=2)
    for tower in (model.head.classification_head.conv, model.head.regression_head.conv):
        convs = [m for m in tower.modules() if isinstance(m, nn.Conv2d)]
        assert [(c.in_channels, c.out_channels) for c in convs] == [(128, 64), (64, 64)]
    full = _slim(num_classes=1).state_dict()
    assert set(model.state_dict()) < set(full)  # a prefix of the 4-layer towers: same names
    with pytest.raises(ConfigError, match="head_convs"):
        _slim(head_convs=5)


def test_frozen_bn_option():
    model = _slim(frozen_bn=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.modules())


def test_r50_is_torchvisions_retinanet_resnet50_fpn():
    torch.manual_seed(0)
    stock = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4)
    torch.manual_seed(0)
    ours = create_model("retinanet_r50", num_classes=4)
    expected = nest_torchvision_fpn(stock.state_dict())
    actual = ours.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)  # same modules, same init order


@pytest.mark.parametrize(("builder", "extractor", "name", "trainable"), [
    (mobilenet_v2, lambda net, k: _mobilenet_extractor(net, True, k), "retinanet_mbv2_slim", 3),
    (resnet50, _resnet_fpn_extractor, "retinanet_r50", 2),
])
def test_trainable_backbone_layers_as_torchvision(builder, extractor, name, trainable):
    reference = extractor(builder(weights=None), trainable).body
    frozen_reference = {k for k, p in reference.named_parameters() if not p.requires_grad}
    model = create_model(name, num_classes=1, trainable_backbone_layers=trainable)
    frozen = {k.removeprefix("body.") for k, p in model.backbone.named_parameters() if not p.requires_grad}
    # torchvision leaves the frozen stages' BatchNorm training its statistics; ours become
    # FrozenBatchNorm2d (buffers, running statistics), so only the convolutions are parameters.
    norms = {k for k, m in reference.named_modules() if isinstance(m, nn.BatchNorm2d)}
    frozen_convs = {k for k in frozen_reference if k.rpartition(".")[0] not in norms}
    assert frozen == frozen_convs and frozen
    for name, module in model.backbone.body.named_modules():
        if name in norms:
            frozen_stage = f"{name}.weight" in frozen_reference
            assert isinstance(module, FrozenBatchNorm2d) == frozen_stage, name
    assert all(p.requires_grad for p in model.fpn.parameters())
    with pytest.raises(ConfigError, match=r"trainable_backbone_layers must be in 0\.\.6"):
        create_model("retinanet_mbv2_slim", num_classes=1, trainable_backbone_layers=7)


def test_detect_equals_torchvision_postprocess():
    model = _slim(num_classes=3).eval()
    _spread_outputs(model)
    images = torch.randn(2, 3, H, W)
    for thresholds in ({}, {"score_threshold": 0.3, "iou_threshold": 0.3, "max_detections": 40}):
        tv = _torchvision_twin(
            model, score_thresh=thresholds.get("score_threshold", 0.05),
            nms_thresh=thresholds.get("iou_threshold", 0.5), detections_per_img=thresholds.get("max_detections", 300),
        ).eval()
        with torch.no_grad():
            expected = tv(list(images))
        actual = model.detect(images, **thresholds)
        assert len(actual) == 2
        for ours, theirs in zip(actual, expected, strict=True):
            assert len(ours) == len(theirs["boxes"]) > 0
            # Same ops in the same order: bit-identical, not merely close.
            np.testing.assert_array_equal(ours.labels, theirs["labels"].numpy())
            np.testing.assert_array_equal(ours.boxes, theirs["boxes"].numpy())
            np.testing.assert_array_equal(ours.scores, theirs["scores"].numpy())
        assert len(actual[0]) == thresholds.get("max_detections", 300)  # the cap binds
    boxes = actual[0].boxes
    assert boxes.min() >= 0 and boxes[:, 2].max() <= W and boxes[:, 3].max() <= H  # clipped to the input


def test_compute_loss_equals_torchvision():
    model = _slim(num_classes=2).train()
    images = torch.randn(2, 3, H, W)
    targets = _targets()
    tv = _torchvision_twin(model).train()
    expected = tv(list(images), targets)
    actual = model.compute_loss(images, targets)
    assert actual.keys() == {"classification", "bbox_regression"}
    for key in actual:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6)


def _per_image_reference(head, cls_logits, bbox_regression, anchors, targets, fg_iou=0.5, bg_iou=0.4):
    """torchvision's own loop: Matcher per image, then RetinaNetHead.compute_loss."""
    matcher = Matcher(fg_iou, bg_iou, allow_low_quality_matches=True)
    matched = [
        matcher(box_iou(t["boxes"], anchors)) if len(t["boxes"])
        else torch.full((len(anchors),), -1, dtype=torch.int64)
        for t in targets
    ]
    outputs = {"cls_logits": cls_logits, "bbox_regression": bbox_regression}
    return head.compute_loss(targets, outputs, [anchors] * len(targets), matched)


def _random_targets(generator, batch, num_classes, size):
    """Per image 0..40 boxes from 4 px (below every anchor: low-quality matches) to the whole image,
    some duplicated (ties between boxes), one image always empty."""
    targets = []
    for i in range(batch):
        count = 0 if i == 1 else int(torch.randint(1, 40, (), generator=generator))
        xy = torch.rand((count, 2), generator=generator) * (size - 8)
        wh = 4 + torch.rand((count, 2), generator=generator) ** 2 * (size - 4)
        boxes = torch.cat([xy, (xy + wh).clamp(max=size)], dim=1)
        if count > 2:
            boxes[-1] = boxes[0]
        targets.append({"boxes": boxes, "labels": torch.randint(0, num_classes, (count,), generator=generator)})
    return targets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_loss_equals_the_per_image_loss(seed):
    """The batched losses against torchvision's per-image loop: values and gradients."""
    generator = torch.Generator().manual_seed(seed)
    model = _slim(num_classes=3)
    size, batch = 192, 5
    images = torch.zeros(batch, 3, size, size)
    with torch.no_grad():
        features = model.forward_features(images)
    anchors = model.anchors(images[:1], features)[0]
    targets = _random_targets(generator, batch, 3, size)
    fg_iou, bg_iou = (0.5, 0.4) if seed != 2 else (0.6, 0.3)
    logits = torch.randn((batch, len(anchors), 3), generator=generator) * 2 - 2
    deltas = torch.randn((batch, len(anchors), 4), generator=generator) * 0.3
    expected_inputs = (logits.clone().requires_grad_(), deltas.clone().requires_grad_())
    actual_inputs = (logits.clone().requires_grad_(), deltas.clone().requires_grad_())
    expected = _per_image_reference(model.head, *expected_inputs, anchors, targets, fg_iou, bg_iou)
    actual = retina_losses(*actual_inputs, anchors, targets, box_coder=model.box_coder, fg_iou=fg_iou, bg_iou=bg_iou)
    for key in ("classification", "bbox_regression"):
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6)
    sum(expected.values()).backward()
    sum(actual.values()).backward()
    for ours, theirs in zip(actual_inputs, expected_inputs, strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-8)
    assert expected_inputs[1].grad.abs().sum() > 0  # boxes were matched: the box loss is not vacuous


def test_compute_loss_falls_on_one_image():
    torch.manual_seed(0)
    model = create_model("retinanet_mbv2_slim", num_classes=1).train()
    image = torch.full((1, 3, 96, 96), -1.5)
    image[:, :, 24:72, 16:80] = 2.0  # one bright rectangle, its box the target
    targets = [{"boxes": torch.tensor([[16.0, 24.0, 80.0, 72.0]]), "labels": torch.tensor([0])}]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    history = []
    for _ in range(8):
        losses = model.compute_loss(image, targets)
        total = losses["classification"] + losses["bbox_regression"]
        assert torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append((losses["classification"].item(), losses["bbox_regression"].item()))
    totals = [c + b for c, b in history]
    assert all(later < earlier for earlier, later in itertools.pairwise(totals)), totals
    assert history[-1][1] < 0.8 * history[0][1] and history[-1][0] < history[0][0], history


def test_compute_loss_rejects_bad_targets():
    model = _slim(num_classes=2)
    images = torch.randn(1, 3, 128, 128)
    bad_label = [{"boxes": torch.tensor([[1.0, 1.0, 9.0, 9.0]]), "labels": torch.tensor([2])}]
    with pytest.raises(DataError, match=r"labels must be in 0\.\.1"):
        model.compute_loss(images, bad_label)
    flat_box = [{"boxes": torch.tensor([[5.0, 1.0, 5.0, 9.0]]), "labels": torch.tensor([0])}]
    with pytest.raises(DataError, match="zero or negative width"):
        model.compute_loss(images, flat_box)
    with pytest.raises(DataError, match="1 targets for 2 images"):
        model.compute_loss(torch.randn(2, 3, 128, 128), flat_box)


@pytest.mark.parametrize("size", [(800, 800), (200, 296), (333, 517)])
def test_card_feature_sizes_match_the_feature_maps(size):
    model = _slim(num_classes=2).eval()
    card = model.card(class_names=["abnormal", "normal"], input_size=size)
    if size[0] < 400:  # real forward only where it is cheap; 800 px is checked against torchvision's 13-cell P6
        with torch.no_grad():
            real = [tuple(f.shape[-2:]) for f in model.forward_features(torch.zeros(1, 3, *size))]
        assert card.anchors.feature_sizes == tuple(real)
    else:
        assert card.anchors.feature_sizes == ((100, 100), (50, 50), (25, 25), (13, 13), (7, 7))
    assert card.anchors.strides == (8, 16, 32, 64, 128)
    assert (card.input.height, card.input.width) == size


def test_card_describes_the_model(tmp_path):
    model = _slim(num_classes=1, score_threshold=0.2, max_detections=50).eval()
    card = model.card(class_names=["abnormal"], input_size=(256, 320))
    assert card.task is Task.DETECT and card.name == "retinanet_mbv2_slim"
    assert [o.name for o in card.outputs] == ["cls_logits", "bbox_regression"]
    assert card.anchors.sizes == tuple(tuple(float(s) for s in level) for level in model.anchor_generator.sizes)
    assert card.box_coder.weights == (1.0, 1.0, 1.0, 1.0)
    assert card.postprocess.score_threshold == 0.2 and card.postprocess.max_detections == 50
    # Letterbox padding normalises to ~0 on every channel (not black, -2), like zero padding.
    pad = np.array(card.input.pad_value, np.float64)
    assert card.input.pad_value == 114
    assert np.all(np.abs((pad - np.array(card.input.mean)) / np.array(card.input.std)) < 0.2)
    card.save(tmp_path)
    assert ModelCard.load(tmp_path) == card
    with pytest.raises(ConfigError, match="2 class names for a 1-class"):
        model.card(class_names=["a", "b"])
    # Anchors placed from the card (stride = input // feature size) are the model's anchors.
    images = torch.zeros(1, 3, 256, 320)
    with torch.no_grad():
        anchors = model.anchors(images, model.forward_features(images))[0]
    first_level = card.anchors.feature_sizes[0]
    stride_y, stride_x = 256 // first_level[0], 320 // first_level[1]
    assert torch.equal(anchors[9], anchors[0] + torch.tensor([stride_x, 0, stride_x, 0.0]))
    assert stride_y == card.anchors.strides[0]


def test_anchor_options_change_the_head():
    model = _slim(num_classes=2, anchor_sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=((1.0,),) * 5)
    images = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        cls_logits, _ = model(images)
    assert cls_logits.shape[1] == sum(s * s for s in (16, 8, 4, 2, 1))  # one anchor per cell


def test_detect_clips_to_each_images_content_as_torchvision_does():
    """A padded batch (letterboxed or scaled inputs): boxes clip to each image's content
    before NMS, exactly as torchvision's postprocess_detections with its `image_sizes`."""
    model = _slim(num_classes=3).eval()
    _spread_outputs(model)
    images = torch.randn(2, 3, H, W)
    sizes = [(H, W), (H // 2, W - 40)]
    images[1, :, sizes[1][0]:, :] = 0
    images[1, :, :, sizes[1][1]:] = 0
    tv = _torchvision_twin(model).eval()
    with torch.no_grad():
        features = model.forward_features(images)
        cls_logits, bbox_regression = model.forward_head(features)
        per_level = [f.shape[-2] * f.shape[-1] * model.anchor_generator.num_anchors_per_location()[0] for f in features]
        split = {"cls_logits": list(cls_logits.split(per_level, dim=1)),
                 "bbox_regression": list(bbox_regression.split(per_level, dim=1))}
        anchors = [list(a.split(per_level)) for a in model.anchors(images, features)]
        expected = tv.postprocess_detections(split, anchors, sizes)
    actual = model.detect(images, image_sizes=sizes)
    for ours, theirs, (h, w) in zip(actual, expected, sizes, strict=True):
        assert len(ours) > 0
        np.testing.assert_array_equal(ours.boxes, theirs["boxes"].numpy())
        np.testing.assert_array_equal(ours.scores, theirs["scores"].numpy())
        assert ours.boxes[:, 2].max() <= w and ours.boxes[:, 3].max() <= h
    assert len(actual[1]) != len(model.detect(images)[1]) or not np.array_equal(
        actual[1].boxes, model.detect(images)[1].boxes)  # the content size changes the result
