"""`train(config)` end to end with the tiny grid detector on a tiny squares set."""

from __future__ import annotations

import json
import logging
import shutil
import time

import pytest
import torch

from leanvision.core import ConfigError, DataError, ModelCard
from leanvision.training import NonFiniteLossError, TrainConfig, load_checkpoint, train
from leanvision.training.config import AugmentOptions
from leanvision.training.loop import HookBase
from tests.training.conftest import tiny_config, tiny_factory, write_squares_set

FLIP = AugmentOptions(steps=({"op": "random_flip", "horizontal": 0.5, "vertical": 0.5},))


class InterruptBeforeEpoch(HookBase):
    """Simulates a killed run: raises KeyboardInterrupt when epoch `epoch` (0-based) starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def before_epoch(self) -> None:
        if self.trainer.epoch == self.epoch:
            raise KeyboardInterrupt


class PoisonAt(HookBase):
    """Makes the loss NaN from global step `iteration` (0-based) on."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def before_step(self) -> None:
        if self.trainer.iteration == self.iteration:
            with torch.no_grad():
                next(self.trainer.model.parameters()).fill_(float("nan"))


def _tensors(state) -> list[tuple[str, torch.Tensor]]:
    """Every tensor in a nested state, with its path, in a stable order."""
    if isinstance(state, torch.Tensor):
        return [("", state)]
    if isinstance(state, dict):
        return [(f"{k}.{p}", t) for k in sorted(state, key=str) for p, t in _tensors(state[k])]
    if isinstance(state, (list, tuple)):
        return [(f"{i}.{p}", t) for i, item in enumerate(state) for p, t in _tensors(item)]
    return []


def _assert_identical(a, b) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert [p for p, _ in ta] == [p for p, _ in tb]
    for (path, x), (_, y) in zip(ta, tb, strict=True):
        assert torch.equal(x, y), f"{path} differs"


def _rows(run_dir):
    timing = {"train_images_per_s", "epoch_seconds", "val_eval_seconds"}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]


def test_run_writes_its_files_and_the_loss_falls(squares_data, tmp_path):
    config = tiny_config(squares_data, tmp_path / "run", epochs=6)
    result = train(config, model_factory=tiny_factory, progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {"last.pt", "best.pt", "metrics.csv", "metrics.jsonl", "config.yaml"}
    assert TrainConfig.from_yaml(run / "config.yaml") == config
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6] and result.epochs == 6
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"]
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == 7 and {"epoch", "loss", "lr", "val_map50"} <= set(csv_lines[0].split(","))
    assert rows[-1]["lr"] == pytest.approx(config.schedule.final_lr, rel=0.2)


def test_checkpoint_carries_card_with_metrics_and_best_tracks_the_fitness(squares_data, tmp_path):
    """best.pt is the first epoch with the highest 0.1 mAP@0.5 + 0.9 mAP (Ultralytics' fitness)."""
    result = train(tiny_config(squares_data, tmp_path / "run", epochs=5), model_factory=tiny_factory, progress=False)
    rows = _rows(tmp_path / "run")
    fitness = [0.1 * r["val_map50"] + 0.9 * r["val_map"] for r in rows]
    best_epoch = fitness.index(max(fitness)) + 1  # the first epoch reaching the maximum
    chosen = rows[best_epoch - 1]
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert result.metric == "fitness" and result.best == pytest.approx(max(fitness))
    assert result.best_epoch == best_epoch and result.best_map50 == pytest.approx(chosen["val_map50"])
    assert result.best_metrics["map"] == pytest.approx(chosen["val_map"])
    assert best["trainer"]["epochs_done"] == best_epoch
    card = ModelCard.from_dict(best["card"])
    assert card.metrics["val_map50"] == pytest.approx(chosen["val_map50"])
    assert card.provenance["amp"].startswith("amp auto ->")
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["trainer"]["epochs_done"] == 5
    assert ModelCard.from_dict(last["card"]).metrics["val_map50"] == pytest.approx(rows[-1]["val_map50"])


def test_resume_ends_bit_identical_to_an_uninterrupted_run(squares_data, tmp_path):
    whole = tiny_config(squares_data, tmp_path / "whole", epochs=4, augment=FLIP)
    train(whole, model_factory=tiny_factory, progress=False)
    parted = whole.replace(output=tmp_path / "parted")
    with pytest.raises(KeyboardInterrupt):
        train(parted, model_factory=tiny_factory, extra_hooks=[InterruptBeforeEpoch(2)], progress=False)
    assert load_checkpoint(tmp_path / "parted")["trainer"]["epochs_done"] == 2
    train(parted, resume=tmp_path / "parted", model_factory=tiny_factory, progress=False)
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "parted")
    for key in ("model", "optimizer", "trainer", "rng"):
        _assert_identical(a[key], b[key])
    assert a["trainer"]["hooks"]["EmaHook"]["updates"] == 4 * 3  # 12 images, batch 4
    assert _rows(tmp_path / "whole") == _rows(tmp_path / "parted")


def test_workers_do_not_change_the_result(squares_data, tmp_path):
    base = tiny_config(squares_data, tmp_path / "w0", epochs=2, augment=FLIP)
    train(base, model_factory=tiny_factory, progress=False)
    with_workers = base.replace(output=tmp_path / "w2", loader=base.loader.__class__(batch_size=4, workers=2, threads=1))
    train(with_workers, model_factory=tiny_factory, progress=False)
    _assert_identical(load_checkpoint(tmp_path / "w0")["model"], load_checkpoint(tmp_path / "w2")["model"])


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(squares_data, tmp_path):
    config = tiny_config(squares_data, tmp_path / "run", epochs=4)
    with pytest.raises(NonFiniteLossError) as info:
        train(config, model_factory=tiny_factory, extra_hooks=[PoisonAt(7)], progress=False)
    message = str(info.value)
    assert "loss is nan at step 8 (epoch 3" in message and "last good checkpoint is kept" in message
    assert "\n" not in message
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["trainer"]["epochs_done"] == 2 and last["trainer"]["iteration"] == 6
    assert all(torch.isfinite(t).all() for _, t in _tensors(last["model"]) if t.is_floating_point())
    assert [r["epoch"] for r in _rows(tmp_path / "run")] == [1, 2]


def test_corrupt_image_is_skipped_with_a_warning_and_counted(squares_data, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(squares_data, data)
    (data / "train" / "images" / "img_003.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with caplog.at_level(logging.WARNING):
        result = train(tiny_config(data, tmp_path / "run", epochs=1), model_factory=tiny_factory, progress=False)
    assert len(result.skipped) == 1 and "img_003.png" in result.skipped[0].path
    assert any("img_003.png" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    card = load_checkpoint(tmp_path / "run")["card"]
    assert card["provenance"]["skipped_images"] == "1"


def test_data_without_positives_is_an_error(tmp_path):
    write_squares_set(tmp_path / "train", images=3, seed=0, negatives=3)
    write_squares_set(tmp_path / "val", images=3, seed=1, negatives=1)
    with pytest.raises(DataError, match="no positive boxes"):
        train(tiny_config(tmp_path, tmp_path / "run"), model_factory=tiny_factory, progress=False)


def test_empty_and_missing_data_are_errors(tmp_path):
    write_squares_set(tmp_path / "train", images=0, seed=0, negatives=0)
    with pytest.raises(DataError, match="no readable images"):
        train(tiny_config(tmp_path, tmp_path / "run"), model_factory=tiny_factory, progress=False)
    with pytest.raises(DataError, match="dataset not found"):
        train(tiny_config(tmp_path / "nowhere", tmp_path / "run"), model_factory=tiny_factory, progress=False)


def test_an_existing_run_is_not_overwritten(squares_data, tmp_path):
    config = tiny_config(squares_data, tmp_path / "run", epochs=1)
    train(config, model_factory=tiny_factory, progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(config, model_factory=tiny_factory, progress=False)


class SlowSteps(HookBase):
    """Makes every step take at least `seconds` (a tiny model's step can be faster than a budget)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def before_step(self) -> None:
        time.sleep(self.seconds)


def test_time_budget_stops_early_and_still_evaluates_and_saves(squares_data, tmp_path):
    config = tiny_config(squares_data, tmp_path / "run", epochs=50, time_budget_minutes=1e-4)  # 6 ms
    result = train(config, model_factory=tiny_factory, progress=False, extra_hooks=[SlowSteps(0.01)])
    assert result.epochs == 1 and result.last_metrics["epoch"] == 1
    last = load_checkpoint(tmp_path / "run")
    assert last["trainer"]["iteration"] == 1  # stopped after the first step
    assert last["trainer"]["max_epochs"] == 1  # the schedule was fitted to the budget
