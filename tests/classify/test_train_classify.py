"""Classification trains end to end: a tiny set is learned to 100 % top-1, the run's card
carries the class counts, and the task's rows pass the contract template."""

from __future__ import annotations

import json

import pytest

from leanvision.core import ModelCard, Task
from leanvision.core.classes import ClassProbs
from leanvision.training.checkpoint import load_checkpoint
from leanvision.training.hooks.metrics_log import read_rows
from tests.classify.conftest import CLASSES, tiny_config
from tests.templates.task_contract import TaskContractTests


def test_a_tiny_set_is_learned_to_full_top1(trained_run):
    rows = read_rows(trained_run)
    losses = [row["loss"] for row in rows]
    top1 = [row["val_top1"] for row in rows if "val_top1" in row]
    assert losses[-1] < 0.5 * losses[0], losses
    assert top1[-1] == 1.0, top1


def test_the_card_keeps_classes_counts_and_resize(trained_run):
    card = ModelCard.from_dict(load_checkpoint(trained_run / "best.pt")["card"])
    assert card.task is Task.CLASSIFY and card.class_names == CLASSES
    assert card.class_counts == (6, 6, 6, 6)
    assert card.input.resize == "letterbox" and card.outputs[0].name == "logits"


def test_a_detection_only_sampler_option_is_refused_for_another_task(packages, tmp_path):
    from leanvision.core import ConfigError
    from leanvision.training import train
    from leanvision.training.config import LoaderOptions

    config = tiny_config(packages / "train", None, tmp_path / "run", epochs=1,
                         loader=LoaderOptions(batch_size=8, workers=0, threads=1, sampler="sqrt"))
    train(config, progress=False)  # classify honours it
    with pytest.raises(ConfigError, match="sampler 'sqrt' is not available for detect"):
        from leanvision.training.tasks.base import check_sampler
        from leanvision.training.tasks.detect import DetectAdapter

        check_sampler(DetectAdapter(), "sqrt")


def test_val_writes_the_long_tail_report(trained_run, packages, tmp_path):
    from tests.counting.conftest import run_cli

    code, out, err = run_cli(["val", str(trained_run), str(packages / "val"), "--out", str(tmp_path), "--tta", "flip"])
    assert code == 0, err
    assert "top-1" in out and "(flip TTA)" in out and "head" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["tta"] == "flip" and 0 <= metrics["top1"] <= 1 and metrics["images"] == 12


class TestClassifyTaskContract(TaskContractTests):
    @pytest.fixture
    def contract_task(self):
        return Task.CLASSIFY

    @pytest.fixture
    def contract_exported(self, exported):
        return exported

    @pytest.fixture
    def contract_labelled(self, packages):
        return packages / "val"

    @pytest.fixture
    def contract_result_type(self):
        return ClassProbs

    @pytest.fixture
    def contract_run(self, trained_run):
        return trained_run
