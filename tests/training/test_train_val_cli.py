"""`leanvision train` and `leanvision val` command functions, on the tiny registered model."""

from __future__ import annotations

import json

import pytest
import typer
import yaml
from typer.testing import CliRunner

from leanvision.cli.train import train as train_command
from leanvision.cli.val import val as val_command
from leanvision.core import ConfigError, DataError, ModelError
from leanvision.models import register_model, unregister_model
from leanvision.training import load_checkpoint
from tests.training.conftest import tiny_config, write_squares_set
from tests.training.tiny_detector import TinyGridDetector

app = typer.Typer()
app.command("train")(train_command)
app.command("val")(val_command)
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    register_model("tiny_grid", task="detect")(lambda *, num_classes, weights_backbone=None: TinyGridDetector(num_classes))
    yield
    unregister_model("tiny_grid")


@pytest.fixture
def recipe(squares_data, tmp_path):
    path = tmp_path / "recipe.yaml"
    config = tiny_config(squares_data, tmp_path / "run", epochs=2)
    path.write_text(yaml.safe_dump(config.to_dict()))
    return path


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_train_then_resume_extends_the_run(recipe, tmp_path):
    result = _invoke("train", "--config", recipe, "seed=1", "--json", tmp_path / "train.json")
    assert result.exit_code == 0, result.output
    assert "2 epochs, best val fitness (0.1 mAP@0.5 + 0.9 mAP)" in result.output
    summary = json.loads((tmp_path / "train.json").read_text())
    best = summary["best_metrics"]
    assert summary["metric"] == "fitness" and summary["best_map50"] == best["map50"]
    assert summary["best"] == pytest.approx(0.1 * best["map50"] + 0.9 * best["map"])
    assert f"mAP@0.5 {best['map50']:.4f}, mAP {best['map']:.4f})" in result.output
    assert summary["epochs"] == 2 and summary["run_dir"] == str(tmp_path / "run")
    result = _invoke("train", "--resume", tmp_path / "run", "schedule.epochs=3")
    assert result.exit_code == 0, result.output
    last = load_checkpoint(tmp_path / "run")
    assert last["trainer"]["epochs_done"] == 3 and last["config"]["seed"] == 1


def test_val_prints_metrics_writes_pr_curve_and_json(recipe, squares_data, tmp_path):
    assert _invoke("train", "--config", recipe).exit_code == 0
    out = tmp_path / "val"
    result = _invoke("val", tmp_path / "run", squares_data / "val", "--out", out)
    assert result.exit_code == 0, result.output
    assert "mAP@[.5:.95]" in result.output and "square: AP@0.5" in result.output
    assert (out / "pr_curve.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["checkpoint"].endswith("best.pt") and metrics["num_images"] == 6
    assert metrics["num_negative_images"] == 1 and 0.0 <= metrics["map50"] <= 1.0


def test_val_scores_the_checkpoint_as_training_did(recipe, squares_data, tmp_path):
    assert _invoke("train", "--config", recipe).exit_code == 0
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    result = _invoke("val", tmp_path / "run" / "best.pt", squares_data / "val", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    measured = json.loads((tmp_path / "metrics.json").read_text())["map50"]
    assert measured == pytest.approx(best["card"]["metrics"]["val_map50"], abs=1e-9)


@pytest.mark.parametrize(
    ("make_args", "error", "expected"),
    [
        (lambda p: ["train", "--config", p / "missing.yaml"], ConfigError, "cannot read"),
        (lambda p: ["train"], ConfigError, "a recipe is needed"),
        (lambda p: ["train", "--resume", p / "nowhere"], ModelError, "checkpoint not found"),
        (lambda p: ["val", p / "nowhere.pt", p], ModelError, "checkpoint not found"),
        (lambda p: ["val", p / "corrupt.pt", p], ModelError, "corrupt or unreadable checkpoint"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, make_args, error, expected):
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    result = _invoke(*make_args(tmp_path))
    assert isinstance(result.exception, error), result.output
    assert expected in str(result.exception) and "\n" not in str(result.exception)


def test_val_rejects_missing_empty_and_foreign_data(recipe, tmp_path):
    assert _invoke("train", "--config", recipe).exit_code == 0
    ckpt = tmp_path / "run" / "best.pt"
    result = _invoke("val", ckpt, tmp_path / "nowhere")
    assert isinstance(result.exception, DataError) and "dataset not found" in str(result.exception)
    write_squares_set(tmp_path / "empty", images=0, seed=0, negatives=0)
    result = _invoke("val", ckpt, tmp_path / "empty")
    assert isinstance(result.exception, DataError) and "no images" in str(result.exception)
    write_squares_set(tmp_path / "other", images=2, seed=0, negatives=0, classes=("circle",))
    result = _invoke("val", ckpt, tmp_path / "other")
    assert isinstance(result.exception, DataError) and "differ from the model's" in str(result.exception)
