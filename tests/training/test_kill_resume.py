"""kill -9 during `leanvision train`, then `leanvision train --resume RUN_DIR`: the run ends
bit-identical to an uninterrupted one (weights, optimizer, EMA, best.pt, metrics rows).

The killed runs are real processes killed with SIGKILL: when the first `last.pt` appears, right
before and right after `best.pt` is committed (the epoch whose checkpoint holds the best val
mAP), and at a random moment. After the kill the run directory holds only complete files; it
is resumed (or, if no checkpoint had been written yet, started again) to the end.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
import torch
import yaml

from leanvision.models import register_model, unregister_model
from leanvision.training import load_checkpoint
from tests.helpers import run_cli
from tests.kill9 import Launcher, Run, kill_after, poll_kill
from tests.training.conftest import tiny_config
from tests.training.tiny_detector import TinyGridDetector

pytestmark = pytest.mark.slow

EPOCHS = 4
TIMING = ("train_images_per_s", "epoch_seconds", "val_eval_seconds")  # wall-clock columns differ by run


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    register_model("tiny_grid", task="detect")(lambda *, num_classes, weights_backbone=None: TinyGridDetector(num_classes))
    yield
    unregister_model("tiny_grid")


@pytest.fixture(scope="module")
def recipe(squares_data, tmp_path_factory) -> Path:
    """The tiny recipe with a random flip (augmentation RNG) and a loader worker process."""
    config = tiny_config(squares_data, Path("unused"), epochs=EPOCHS, seed=5).to_dict()
    config["augment"]["steps"] = [{"op": "random_flip", "horizontal": 0.5}]
    config["loader"]["workers"] = 1
    del config["output"]
    path = tmp_path_factory.mktemp("recipe") / "recipe.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    launcher = Launcher(tmp_path_factory.mktemp("launcher"))
    yield launcher
    launcher.close()


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory) -> Path:
    """The uninterrupted run."""
    run = tmp_path_factory.mktemp("reference") / "run"
    code, _, stderr = run_cli(["train", "--config", str(recipe), f"output={run}"])
    assert code == 0, stderr
    return run


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _best_epoch(run: Path) -> int:
    return load_checkpoint(run / "best.pt")["trainer"]["epochs_done"]


def _tensors(value, prefix: str = "") -> dict[str, object]:
    """Every leaf of a checkpoint, by its path (tensors kept as tensors)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _tensors(item, f"{prefix}/{key}").items()}
    if isinstance(value, list | tuple):
        return {k: v for i, item in enumerate(value) for k, v in _tensors(item, f"{prefix}/{i}").items()}
    return {prefix: value}


def _assert_same_checkpoint(got: Path, want: Path) -> None:
    a, b = load_checkpoint(got), load_checkpoint(want)
    for part in ("model", "optimizer", "trainer", "rng"):
        left, right = _tensors(a[part]), _tensors(b[part])
        assert left.keys() == right.keys(), (got, part)
        for key, value in left.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, right[key]), f"{got}: {part}{key} differs"
            else:
                assert value == right[key], f"{got}: {part}{key}: {value!r} != {right[key]!r}"
    assert a["card"]["metrics"] == b["card"]["metrics"]


def _assert_complete_files(run: Path) -> None:
    """After a kill: every file is whole (checkpoints load, metrics rows parse)."""
    for name in ("last.pt", "best.pt"):
        if (run / name).exists():
            load_checkpoint(run / name)
    if (run / "metrics.jsonl").exists():
        epochs = [row["epoch"] for row in _rows(run)]
        assert epochs == list(range(1, len(epochs) + 1))


def _continue(run: Path, recipe: Path) -> None:
    """What a user does after the kill: resume, or start again if no checkpoint was written."""
    if (run / "last.pt").exists():
        code, _, stderr = run_cli(["train", "--resume", str(run)])
    else:
        code, _, stderr = run_cli(["train", "--config", str(recipe), f"output={run}"])
    assert code == 0, stderr


def _assert_same_run(run: Path, reference: Path) -> None:
    """Same rows, weights, optimizer, EMA, RNG and best.pt; no temp file of the killed run left."""
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert _rows(run) == _rows(reference)
    _assert_same_checkpoint(run / "last.pt", reference / "last.pt")
    _assert_same_checkpoint(run / "best.pt", reference / "best.pt")
    assert (run / "metrics.csv").read_text().count("\n") == EPOCHS + 1


def _kill_and_resume(process: Run, run: Path, recipe: Path, reference: Path) -> None:
    assert process.killed, (process.wait(), process.stderr)
    _assert_complete_files(run)
    _continue(run, recipe)
    _assert_same_run(run, reference)


def test_the_reference_run_has_a_best_epoch_before_the_last(reference):
    """The kills around best.pt below need a best epoch that later epochs do not beat."""
    assert 1 <= _best_epoch(reference) < EPOCHS


def test_kill_once_the_first_checkpoint_is_written(launcher, recipe, reference, tmp_path):
    run = tmp_path / "run"
    process = launcher.start(["train", "--config", recipe, f"output={run}"])
    assert poll_kill(process, lambda: (run / "last.pt").exists()), "the run ended before the kill"
    _assert_complete_files(run)
    _continue(run, recipe)
    _assert_same_run(run, reference)


@pytest.mark.parametrize("when", ["before", "after"])
def test_kill_around_the_best_checkpoint(launcher, recipe, reference, tmp_path, when):
    """SIGKILL right before / right after best.pt of the best epoch is renamed into place."""
    run = tmp_path / "run"
    process = launcher.start(["train", "--config", recipe, f"output={run}"], kill=f"{when}:best.pt:{_best_epoch(reference)}")
    _kill_and_resume(process, run, recipe, reference)


def test_kill_at_a_random_moment(launcher, recipe, reference, tmp_path):
    run = tmp_path / "run"
    process = launcher.start(["train", "--config", recipe, f"output={run}"])
    deadline = time.monotonic() + 120
    while not (run / "config.yaml").exists() and process.running() and time.monotonic() < deadline:
        time.sleep(0.002)  # training starts once config.yaml is written
    delay = random.uniform(0.0, 0.5)  # the 4 epochs take ~1-2 s; a run that ended first is checked all the same
    kill_after(process, delay)
    _assert_complete_files(run)
    _continue(run, recipe)
    _assert_same_run(run, reference)
