"""Frozen BatchNorm folded into its convolution while training (`models.fold`): the same
model, numerically and by its state dict, only faster."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from leanvision.models import create_model
from leanvision.models.fold import fold_frozen_norms, unfold

VARIANTS = [("retinanet_effl0_slim", 4), ("retinanet_mbv2_slim", 4)]


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


@pytest.mark.parametrize(("name", "trainable"), VARIANTS)
def test_the_folded_model_computes_the_same_and_keeps_its_state_dict(name, trainable):
    torch.manual_seed(0)
    model = create_model(name, num_classes=2, trainable_backbone_layers=trainable)
    plain = create_model(name, num_classes=2)  # nothing frozen, nothing folded
    assert _folded(model) >= 9 and _folded(plain) == 0
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
