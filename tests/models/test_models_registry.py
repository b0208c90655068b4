import subprocess
import sys

import pytest
from torch import nn

from leanvision.core import ConfigError, Task
from leanvision.models import create_model, list_models, register_model, unregister_model

DETECTORS = ["retinanet_effl0_slim", "retinanet_mbv2", "retinanet_mbv2_slim", "retinanet_r50"]
COUNTERS = ["csrnet", "csrnet_mbv2"]
CLASSIFIERS = ["cls_effl0", "cls_inception_resnet_v2", "cls_mnv3", "cls_resnet18", "cls_resnet50", "cls_resnet50_cbam",
               "cls_seresnext50", "timm_classifier"]


def test_importing_the_package_loads_no_torch():
    code = "import sys, leanvision.models as m; m.list_models(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_list_models_filters_by_task():
    assert list_models() == sorted(DETECTORS + COUNTERS + CLASSIFIERS)
    assert list_models(Task.DETECT) == DETECTORS
    assert list_models("detect") == DETECTORS
    assert list_models(Task.COUNT) == COUNTERS
    assert list_models(Task.CLASSIFY) == CLASSIFIERS
    with pytest.raises(ConfigError, match="unknown task 'detection'"):
        list_models("detection")


class _Toy(nn.Module):
    def __init__(self, num_classes: int, weights_backbone, width: int) -> None:
        super().__init__()
        self.received = (num_classes, weights_backbone, width)
        self.fc = nn.Linear(width, num_classes)


@pytest.fixture
def toy_model():
    @register_model("toy_classifier", task=Task.CLASSIFY)
    def toy_classifier(*, num_classes, weights_backbone=None, width=4):
        return _Toy(num_classes, weights_backbone, width)

    yield toy_classifier
    unregister_model("toy_classifier")


def test_user_model_is_listed_and_created(toy_model):
    assert list_models(Task.CLASSIFY) == sorted([*CLASSIFIERS, "toy_classifier"])
    assert "toy_classifier" not in list_models(Task.DETECT)
    model = create_model("toy_classifier", num_classes=3, weights_backbone="bb.pth", width=7)
    assert model.received == (3, "bb.pth", 7)


def test_duplicate_names_raise(toy_model):
    with pytest.raises(ValueError, match="already registered under the name 'toy_classifier'"):
        register_model("toy_classifier", task="classify")(toy_model)
    with pytest.raises(ValueError, match="retinanet_r50"):
        register_model("retinanet_r50", task="detect")(toy_model)
    assert list_models(Task.CLASSIFY).count("toy_classifier") == 1


def test_unknown_name_lists_close_names():
    with pytest.raises(ConfigError) as info:
        create_model("retinanet_mbv3_slim", num_classes=1)
    message = str(info.value)
    assert "unknown model 'retinanet_mbv3_slim'" in message and "retinanet_mbv2_slim" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"known: cls_effl0, .*, csrnet, csrnet_mbv2, retinanet_effl0_slim, retinanet_mbv2, retinanet_mbv2_slim, retinanet_r50"):
        create_model("yolo", num_classes=1)


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match=r"unknown key 'fpn_chanels'.*did you mean 'fpn_channels'"):
        create_model("retinanet_mbv2_slim", num_classes=1, fpn_chanels=64)


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_num_classes_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("retinanet_mbv2_slim", num_classes=value)


def test_bad_option_value_is_a_config_error():
    with pytest.raises(ConfigError, match="anchors per cell"):
        create_model("retinanet_mbv2_slim", num_classes=1, anchor_sizes=((32,),) * 4 + ((512, 600),))
    with pytest.raises(ConfigError, match="p6_from"):
        create_model("retinanet_mbv2_slim", num_classes=1, p6_from="c4")
