"""Frozen BatchNorm folded into its convolution while training (`models.fold`): the same
model, numerically and by its state dict, only faster."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from timm.layers import Conv2dSame, conv2d_same
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from leanvision.models import create_model
from leanvision.models.fold import fold_frozen_norms, same_conv_without_copy, unfold

VARIANTS = [("retinanet_effl0_slim", 4, False), ("retinanet_mbv2_slim", 4, False),
            ("retinanet_effl0_slim", 4, True), ("retinanet_mbv2_slim", None, True)]


def _folded(model: nn.Module) -> int:
    return sum(type(m).__name__.startswith("FoldedConv") for m in model.modules())


def _unfolded_twin(model: nn.Module) -> nn.Module:
    """A copy of `model` with every fold undone: the reference computation."""
    twin = copy.deepcopy(model)
    assert unfold(twin) == _folded(model)
    return twin


def _train_on_running_statistics(model: nn.Module) -> nn.Module:
    """Training mode (the folds act), trainable BatchNorm on running statistics: batch
    statistics of a tiny batch would amplify float rounding past any tolerance."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    return model


def _spread_statistics(model: nn.Module, seed: int) -> None:
    """BatchNorm statistics and affine terms away from their identity initialisation."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "running_var"):
            for name, low, high in (("running_mean", -0.5, 0.5), ("running_var", 0.5, 2.0),
                                    ("weight", 0.5, 1.5), ("bias", -0.3, 0.3)):
                tensor = getattr(module, name)
                tensor.data.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)


@pytest.mark.parametrize(("name", "trainable", "frozen_bn"), VARIANTS)
def test_the_folded_model_computes_the_same_and_keeps_its_state_dict(name, trainable, frozen_bn):
    torch.manual_seed(0)
    model = create_model(name, num_classes=2, trainable_backbone_layers=trainable, frozen_bn=frozen_bn)
    plain = create_model(name, num_classes=2)  # nothing frozen, nothing folded
    assert _folded(model) >= 9 and _folded(plain) == 0
    if frozen_bn:  # every backbone BatchNorm frozen: every one folded, trainable convolutions too
        norms = [m for m in model.backbone.modules() if "BatchNorm" in type(m).__name__]
        assert norms and all(type(m).__name__.startswith("Folded") for m in norms)
        assert any(m.weight.requires_grad for m in model.backbone.modules() if type(m).__name__.startswith("FoldedConv"))
    assert list(model.state_dict()) == [k for k in model.state_dict()]
    _spread_statistics(model, seed=1)
    reference = _unfolded_twin(model)
    assert _folded(reference) == 0 and reference.state_dict().keys() == model.state_dict().keys()
    images = torch.randn(2, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    for mode in (_train_on_running_statistics, nn.Module.eval):
        mode(model)
        mode(reference)
        torch.manual_seed(3)
        got = model.forward_features(images)
        torch.manual_seed(3)
        expected = reference.forward_features(images)
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("conv", [nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), Conv2dSame(4, 6, 3, stride=2, bias=False),
                                  nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=True)])
def test_a_trainable_convolution_folded_with_a_frozen_norm_learns_as_the_pair(conv):
    """Same output and the same gradients for the convolution's weights and its input as the
    two layers run one after the other: the optimizer sees no difference."""
    torch.manual_seed(0)
    pair = nn.Sequential(conv, FrozenBatchNorm2d(conv.out_channels))
    _spread_statistics(pair, seed=4)
    folded = copy.deepcopy(pair)
    assert fold_frozen_norms(folded) == 1 and folded[0].weight.requires_grad
    images = torch.randn(2, conv.in_channels, 13, 16, generator=torch.Generator().manual_seed(1))
    results = []
    for module in (pair.train(), folded.train()):
        x = images.clone().requires_grad_(True)
        out = module(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out, x.grad, module[0].weight.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(height=st.integers(5, 23), width=st.integers(5, 23), kernel=st.sampled_from([1, 2, 3, 4, 5]),
       stride=st.sampled_from([1, 2, 3]), depthwise=st.booleans(), bias=st.booleans())
def test_same_padding_without_the_copy_equals_timms(height, width, kernel, stride, depthwise, bias):
    """TensorFlow's "same" padding, odd totals included (one row more after than before)."""
    generator = torch.Generator().manual_seed(height * 100 + width)
    channels, groups = (4, 4) if depthwise else (4, 1)
    x = torch.randn(2, channels, height, width, generator=generator)
    weight = torch.randn(3 * channels if depthwise else 5, channels // groups, kernel, kernel, generator=generator)
    b = torch.randn(weight.shape[0], generator=generator) if bias else None
    expected = conv2d_same(x, weight, b, (stride, stride), (0, 0), (1, 1), groups)
    got = same_conv_without_copy(x, weight, b, (stride, stride), (1, 1), groups)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_frozen_same_convolution_skips_the_padded_copy(monkeypatch):
    """The frozen stem runs without timm's padded copy of its input; a trainable one, whose
    backward would pay for the larger kernel, keeps timm's path."""
    import leanvision.models.fold as fold

    calls = []
    monkeypatch.setattr(fold, "conv2d_same", lambda *a: calls.append("timm") or conv2d_same(*a))
    pair = nn.Sequential(Conv2dSame(3, 8, 3, stride=2, bias=False), FrozenBatchNorm2d(8))
    _spread_statistics(pair, seed=2)
    fold_frozen_norms(pair)
    images = torch.randn(1, 3, 17, 17)
    pair.train().requires_grad_(False)(images)
    assert calls == []
    pair.requires_grad_(True)(images).sum().backward()
    assert calls == ["timm"]


def test_a_loaded_state_dict_is_what_the_fold_uses():
    """The fold reads the BatchNorm statistics at each call: resume, EMA copies and
    `load_state_dict` need nothing more."""
    torch.manual_seed(0)
    model = create_model("retinanet_effl0_slim", num_classes=2, trainable_backbone_layers=4)
    other = copy.deepcopy(model)
    _spread_statistics(other, seed=5)
    model.load_state_dict(other.state_dict())
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    reference = _train_on_running_statistics(_unfolded_twin(other))
    with torch.no_grad():
        got = _train_on_running_statistics(copy.deepcopy(model)).backbone(images)  # a deep copy (EMA) keeps its folds
        expected = reference.backbone(images)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


class _NormFirst(nn.Module):
    """Children listed conv, norm, but run the other way round: folding would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False).requires_grad_(False)
        self.norm = FrozenBatchNorm2d(3)

    def forward(self, x):
        return self.conv(self.norm(x))


def test_a_pair_that_does_not_run_in_order_is_left_alone():
    module = _NormFirst()
    _spread_statistics(module, seed=0)
    assert fold_frozen_norms(module) == 0
    assert type(module.conv) is nn.Conv2d and type(module.norm) is FrozenBatchNorm2d
    ordered = nn.Sequential(copy.deepcopy(module.conv), copy.deepcopy(module.norm))
    assert fold_frozen_norms(ordered) == 1


def test_bf16_autocast_covers_fpn_and_head_only_and_the_loss_falls():
    """The Trainer's bf16 step on RetinaNet: backbone in fp32, FPN and head in bf16, the
    outputs back in fp32 for the loss; a few steps on one image still fit it."""
    from leanvision.training import Trainer

    torch.manual_seed(0)
    model = create_model("retinanet_mbv2_slim", num_classes=1, trainable_backbone_layers=4)
    seen: dict[str, torch.dtype] = {}
    for name, part in (("backbone", model.backbone.body), ("fpn", model.fpn.inner_blocks[0]),
                       ("head", model.head.classification_head.conv[0])):
        part.register_forward_hook(lambda _m, _i, out, name=name: seen.setdefault(name, _first(out).dtype) and None)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.03, momentum=0.9)
    trainer = Trainer(model, [], optimizer, mean=(127.5,) * 3, std=(50.0,) * 3, channels_last=True)
    trainer.autocast_dtype = torch.bfloat16
    images = torch.zeros(1, 3, 96, 96, dtype=torch.uint8)
    images[..., 24:72, 16:80] = 255  # one bright rectangle, its box the target
    batch = (images, [{"boxes": torch.tensor([[16.0, 24.0, 80.0, 72.0]]), "labels": torch.tensor([0])}], [0])
    losses = []
    for _ in range(8):
        trainer.run_step(batch)
        losses.append(trainer.losses["total"])
    assert seen == {"backbone": torch.float32, "fpn": torch.bfloat16, "head": torch.bfloat16}
    assert all(later < earlier for earlier, later in itertools.pairwise(losses)), losses
    assert model._part_dtype is None  # the step's autocast ends with the step


def _first(output):
    if isinstance(output, torch.Tensor):
        return output
    return next(iter(output.values() if isinstance(output, dict) else output))
