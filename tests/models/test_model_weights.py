"""Weights from local files: torchvision classifier state dicts, full models, checkpoints."""

import pytest
import torch
from torchvision.models import mobilenet_v2, resnet18

from leanvision.core import ModelError
from leanvision.models import create_model


@pytest.fixture(scope="module")
def mobilenet_file(tmp_path_factory):
    """A torchvision MobileNetV2 state dict as `torch.save(model.state_dict())` writes it."""
    torch.manual_seed(123)
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2-test.pth"
    torch.save(mobilenet_v2(weights=None).state_dict(), path)
    return path


def test_weights_backbone_round_trip(mobilenet_file):
    source = torch.load(mobilenet_file, weights_only=True)
    model = create_model("retinanet_mbv2_slim", num_classes=1, weights_backbone=mobilenet_file)
    loaded = model.backbone.state_dict()
    for key, value in source.items():
        if key.startswith("classifier."):
            continue  # the classifier head is not part of the backbone
        assert torch.equal(loaded["body." + key.removeprefix("features.")], value), key
    assert len(loaded) == sum(not k.startswith("classifier.") for k in source)


def test_missing_backbone_file_names_it(tmp_path):
    path = tmp_path / "nowhere.pth"
    with pytest.raises(ModelError, match="weights file not found") as info:
        create_model("retinanet_mbv2_slim", num_classes=1, weights_backbone=path)
    assert info.value.path == str(path)


def test_wrong_backbone_file_names_the_keys(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    with pytest.raises(ModelError) as info:
        create_model("retinanet_mbv2_slim", num_classes=1, weights_backbone=path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert "missing keys body.0.0.weight" in message and "unexpected keys body.conv1.weight" in message


def test_mismatched_shape_names_the_key(tmp_path, mobilenet_file):
    state = torch.load(mobilenet_file, weights_only=True)
    state["features.0.0.weight"] = torch.zeros(16, 3, 3, 3)
    path = tmp_path / "narrow.pth"
    torch.save(state, path)
    with pytest.raises(ModelError, match=r"shape mismatch body\.0\.0\.weight \(file \(16, 3, 3, 3\), model \(32, 3, 3, 3\)\)"):
        create_model("retinanet_mbv2_slim", num_classes=1, weights_backbone=path)


def test_unreadable_file_is_a_model_error(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ModelError, match="cannot read weights"):
        create_model("retinanet_mbv2_slim", num_classes=1, weights=path)
    torch.save({"epoch": 3}, path)
    with pytest.raises(ModelError, match="not a state dict"):
        create_model("retinanet_mbv2_slim", num_classes=1, weights=path)


def test_full_weights_and_checkpoints_load(tmp_path):
    torch.manual_seed(1)
    source = create_model("retinanet_mbv2_slim", num_classes=2)
    plain, checkpoint = tmp_path / "model.pth", tmp_path / "last.ckpt"
    torch.save(source.state_dict(), plain)
    torch.save({"model": source.state_dict(), "epoch": 7, "card": {"name": "retinanet_mbv2_slim"}}, checkpoint)
    for path in (plain, checkpoint):
        torch.manual_seed(2)
        model = create_model("retinanet_mbv2_slim", num_classes=2, weights=path)
        expected = source.state_dict()
        assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())


def test_full_weights_for_another_head_are_refused(tmp_path):
    path = tmp_path / "two_classes.pth"
    torch.save(create_model("retinanet_mbv2_slim", num_classes=2).state_dict(), path)
    with pytest.raises(ModelError, match=r"shape mismatch head\.classification_head\.cls_logits\.weight"):
        create_model("retinanet_mbv2_slim", num_classes=1, weights=path)
    with pytest.raises(ModelError, match="weights do not fit the retinanet_mbv2"):
        create_model("retinanet_mbv2", num_classes=2, weights=path)


def test_torchvision_detection_layout_loads(tmp_path):
    """torchvision nests the FPN in the backbone (`backbone.fpn.*`); such files load too."""
    torch.manual_seed(1)
    source = create_model("retinanet_mbv2_slim", num_classes=2)
    nested = {("backbone." + k if k.startswith("fpn.") else k): v for k, v in source.state_dict().items()}
    path = tmp_path / "torchvision_layout.pth"
    torch.save(nested, path)
    model = create_model("retinanet_mbv2_slim", num_classes=2, weights=path)
    assert torch.equal(model.fpn.extra_blocks.p6.weight, source.fpn.extra_blocks.p6.weight)
