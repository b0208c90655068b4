"""CSRNet and csrnet_mbv2 behind the counting contract: structure, weights from local files
only, loss by hand, card, parts and profile."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

from leanvision.core import ConfigError, DataError, DensityKernel, DensityMap, ModelError, Task
from leanvision.models import create_model, list_models
from leanvision.models.profile import profile_model
from tests.counting.conftest import run_cli


def _meta(name: str, **overrides) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, num_classes=1, **overrides)


def test_both_models_are_registered_as_counting_models():
    assert list_models(Task.COUNT) == ["csrnet", "csrnet_mbv2"]


def test_csrnet_front_end_is_vgg16s_first_ten_convolutions_and_three_pools():
    model = _meta("csrnet")
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    with torch.device("meta"):
        vgg = [m for m in torchvision.models.vgg16(weights=None).features if isinstance(m, nn.Conv2d)][:10]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(c.in_channels, c.out_channels) for c in vgg]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.backbone.modules()) == 3
    back = [m for m in model.head.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in back] == [512, 512, 512, 256, 128, 64, 1]  # CSRNet B + the 1x1 output
    assert {c.dilation for c in back[:-1]} == {(2, 2)} and back[-1].kernel_size == (1, 1)


@pytest.mark.parametrize("name", ["csrnet", "csrnet_mbv2"])
def test_density_is_at_one_eighth_resolution_rounded_up(name):
    model = create_model(name, num_classes=1).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 61, 90))
    assert out.shape == (2, 1, 8, 12)


def test_vgg_weights_load_from_a_torchvision_state_dict_file(tmp_path):
    torch.manual_seed(1)
    features = torchvision.models.vgg16(weights=None).features  # conv5 included: dropped on load
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.6.weight"] = torch.zeros(1000, 4)  # a head (kept small here): dropped too
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    model = create_model("csrnet", num_classes=1, weights_backbone=path)
    assert torch.equal(model.backbone.body[21].weight, features[21].weight)  # conv4_3


def test_mobilenet_weights_load_and_other_files_are_refused(tmp_path):
    mbv2 = torchvision.models.mobilenet_v2(weights=None)
    good = tmp_path / "mbv2.pth"
    torch.save(mbv2.state_dict(), good)
    model = create_model("csrnet_mbv2", num_classes=1, weights_backbone=good)
    assert torch.equal(model.backbone.body[13].conv[1][0].weight, mbv2.features[13].conv[1][0].weight)
    wrong = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(ModelError, match=r"do not fit the csrnet_mbv2 front end.*unexpected keys"):
        create_model("csrnet_mbv2", num_classes=1, weights_backbone=wrong)
    with pytest.raises(ModelError, match="weights file not found"):
        create_model("csrnet", num_classes=1, weights_backbone=tmp_path / "absent.pth")


def test_options_are_checked():
    with pytest.raises(ConfigError, match="num_classes must be 1"):
        create_model("csrnet_mbv2", num_classes=3)
    with pytest.raises(ConfigError, match="unknown key 'backend_width'"):
        create_model("csrnet_mbv2", num_classes=1, backend_width=3)
    model = _meta("csrnet_mbv2", density={"kernel": "fixed", "sigma": 15.0})
    assert model.density.kernel is DensityKernel.FIXED and model.density.sigma == 15.0


def test_loss_is_half_the_summed_squared_error_per_image():
    model = create_model("csrnet_mbv2", num_classes=1, backend_channels=(8,)).eval()
    images = torch.randn(2, 3, 32, 40)
    targets = [{"density": torch.rand(1, 4, 5)} for _ in range(2)]
    with torch.no_grad():
        predicted = model(images)
        loss = model.compute_loss(images, targets)["density_mse"]
    expected = sum(((predicted[i] - t["density"]) ** 2).sum() for i, t in enumerate(targets)) / 4
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(DataError, match=r"target 1: density must be \(1, 4, 5\)"):
        model.compute_loss(images, [targets[0], {"density": torch.rand(1, 5, 5)}])


def test_predict_returns_density_maps_whose_count_is_the_output_sum():
    model = create_model("csrnet_mbv2", num_classes=1).eval()
    images = torch.randn(2, 3, 48, 64)
    maps = model.predict(images)
    with torch.no_grad():
        sums = model(images).sum(dim=(1, 2, 3))
    assert all(isinstance(m, DensityMap) and m.shape == (6, 8) and m.stride == (8.0, 8.0) for m in maps)
    assert [m.count for m in maps] == pytest.approx(sums.tolist(), rel=1e-5)


def test_card_says_count_stride_and_density_output():
    card = _meta("csrnet").card()
    assert card.task is Task.COUNT and card.output_stride == 8 and card.anchors is None
    assert (card.input.height, card.input.width) == (576, 768)
    assert [(o.name, o.layout) for o in card.outputs] == [("density", "N,1,H,W")]
    with pytest.raises(ConfigError, match="counts one class"):
        _meta("csrnet").card(class_names=("a", "b"))


def test_profile_splits_front_end_and_back_end():
    """CSRNet at 576x768: the 10 VGG convolutions by hand, MACs = sum of k^2 c_in c_out h w."""
    result = profile_model(_meta("csrnet"), input_size=(576, 768))
    assert list(result.parts) == ["backbone", "head"]
    layers = [(3, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 2), (128, 256, 4), (256, 256, 4), (256, 256, 4),
              (256, 512, 8), (512, 512, 8), (512, 512, 8)]
    front = sum(9 * cin * cout * (576 // s) * (768 // s) for cin, cout, s in layers)
    assert result.parts["backbone"].gmacs * 1e9 == pytest.approx(front, rel=1e-9)
    fast = profile_model(_meta("csrnet_mbv2"), input_size=(576, 768))
    assert fast.total.gmacs < result.total.gmacs / 20


def test_profile_command_prints_the_parts():
    code, stdout, stderr = run_cli(["profile", "csrnet_mbv2", "--num-classes", "1", "--input", "256", "--json", "-"])
    assert code == 0, stderr
    assert set(json.loads(stdout)["parts"]) == {"backbone", "head"}
