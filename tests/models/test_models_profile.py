"""Per-part GMACs and parameters against S0's table and torchvision's published figures."""

import json

import pytest
import torch
import typer
from torch import nn
from torchvision.models.detection import RetinaNet_ResNet50_FPN_Weights
from typer.testing import CliRunner

from leanvision.cli.profile import profile
from leanvision.core import ConfigError
from leanvision.models import create_model
from leanvision.models.profile import profile_model

# S0's table (seeds/000, "GFLOPS" that are multiply-accumulates), 800x800 input.
S0_TABLE = {
    "retinanet_r50": {"backbone": 52.55, "fpn": 10.87, "head": 86.27},  # R50-FPN256-Head256
    "retinanet_mbv2_slim": {"backbone": 4.07, "fpn": 2.37, "head": 5.28},  # MbV2-FPN128-Head64
}
# The R50 row counts an 80-class head (86.27 needs it); the slim row S0's own 1-class head:
# with 80 classes its 64-channel output conv alone is 5.5 GMACs (10.73 for the head).
S0_CLASSES = {"retinanet_r50": 80, "retinanet_mbv2_slim": 1}


def _meta_model(name: str, num_classes: int, **overrides) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, num_classes=num_classes, **overrides)


@pytest.mark.parametrize("name", sorted(S0_TABLE))
def test_profile_reproduces_s0s_table(name):
    result = profile_model(_meta_model(name, S0_CLASSES[name]), input_size=(800, 800))
    for part, expected in S0_TABLE[name].items():
        assert result.parts[part].gmacs == pytest.approx(expected, rel=0.10), (part, result.parts[part])
    assert result.total.gmacs == pytest.approx(sum(c.gmacs for c in result.parts.values()), rel=1e-9)


def test_r50_with_p6_on_c5_matches_s0s_fpn_exactly():
    result = profile_model(_meta_model("retinanet_r50", 80, p6_from="c5"))
    assert result.parts["fpn"].gmacs == pytest.approx(10.87, rel=0.01)


def test_profile_matches_torchvisions_published_figures():
    """torchvision's COCO RetinaNet: 151.54 GFLOPS (MACs) and 34,014,999 parameters (frozen BN)."""
    meta = RetinaNet_ResNet50_FPN_Weights.COCO_V1.meta
    result = profile_model(_meta_model("retinanet_r50", 91, frozen_bn=True))
    assert result.total.gmacs == pytest.approx(meta["_ops"], abs=0.01)
    assert round(result.total.params_m * 1e6) == meta["num_params"]


def test_slim_head_by_hand():
    """Head MACs = cells over P3..P7 x (two towers + two output convs), all 3x3."""
    cells = sum(s * s for s in (100, 50, 25, 13, 7))
    tower = 9 * (128 * 64 + 3 * 64 * 64)
    outputs = 9 * 64 * 9 * (80 + 4)  # 9 anchors per cell, 80 classes + 4 deltas
    result = profile_model(_meta_model("retinanet_mbv2_slim", 80))
    assert result.parts["head"].gmacs * 1e9 == pytest.approx(cells * (2 * tower + outputs), rel=1e-12)


def test_profile_leaves_a_real_model_untouched():
    torch.manual_seed(0)
    model = create_model("retinanet_mbv2_slim", num_classes=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = profile_model(model, input_size=(320, 480))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert next(model.parameters()).device.type == "cpu"
    assert result.total.params_m == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6)
    assert result.parts["backbone"].params_m == pytest.approx(sum(p.numel() for p in model.backbone.parameters()) / 1e6)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(profile)
    return app


def test_cli_json_and_table():
    runner = CliRunner()
    result = runner.invoke(_cli(), ["retinanet_mbv2_slim", "--num-classes", "1", "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"parts", "total"}
    assert list(data["parts"]) == ["backbone", "fpn", "head"]
    assert all(set(v) == {"gmacs", "params_m"} for v in [*data["parts"].values(), data["total"]])
    assert data["parts"]["fpn"]["gmacs"] == pytest.approx(2.37, rel=0.01)
    table = runner.invoke(_cli(), ["retinanet_mbv2_slim", "--input", "400"])
    assert table.exit_code == 0 and "backbone" in table.stdout and "total" in table.stdout


def test_cli_unknown_model_is_a_one_line_error():
    result = CliRunner().invoke(_cli(), ["retinanet_mbv9"])
    assert isinstance(result.exception, ConfigError)
    assert "\n" not in str(result.exception) and "retinanet_mbv2" in str(result.exception)
