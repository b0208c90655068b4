from dataclasses import dataclass
from pathlib import Path

import pytest

from leanvision.core import Config, ConfigError, Task


@dataclass(frozen=True)
class Optim(Config):
    lr: float = 0.01
    momentum: float = 0.9


@dataclass(frozen=True)
class Recipe(Config):
    name: str
    task: Task = Task.DETECT
    epochs: int = 10
    sizes: tuple[int, ...] = (800,)
    optim: Optim = Optim()
    out: Path | None = None


def test_yaml_round_trip(tmp_path):
    recipe = Recipe(name="s0", sizes=(640, 800), optim=Optim(lr=0.1), out=Path("runs/x"))
    recipe.to_yaml(tmp_path / "r.yaml")
    assert Recipe.from_yaml(tmp_path / "r.yaml") == recipe


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    (tmp_path / "r.yaml").write_text("name: s0\noptim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        Recipe.from_yaml(tmp_path / "r.yaml")
    message = str(info.value)
    assert "r.yaml" in message and "unknown key 'lrr'" in message and "did you mean 'lr'" in message


def test_wrong_types_and_missing_keys_are_rejected():
    with pytest.raises(ConfigError, match=r"Recipe\.epochs: expected an integer"):
        Recipe.from_dict({"name": "a", "epochs": "ten"})
    with pytest.raises(ConfigError, match="missing required key 'name'"):
        Recipe.from_dict({})
    with pytest.raises(ConfigError, match="is not one of"):
        Recipe.from_dict({"name": "a", "task": "track"})


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        Recipe(name="a").epochs = 3  # type: ignore[misc]


def test_key_value_overrides_revalidate():
    recipe = Recipe(name="s0").with_overrides(["optim.lr=0.5", "epochs=3", "sizes=[320, 640]"])
    assert recipe.optim.lr == 0.5 and recipe.epochs == 3 and recipe.sizes == (320, 640)
    with pytest.raises(ConfigError, match=r"unknown key .optim\.mom."):
        Recipe(name="s0").with_overrides(["optim.mom=0.1"])
    with pytest.raises(ConfigError, match="expected an integer"):
        Recipe(name="s0").with_overrides(["epochs=many"])
    with pytest.raises(ConfigError, match="key=value"):
        Recipe(name="s0").with_overrides(["epochs"])


def test_bad_yaml_is_one_line_error(tmp_path):
    (tmp_path / "r.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Recipe.from_yaml(tmp_path / "r.yaml")
