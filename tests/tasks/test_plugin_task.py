"""A task defined only in tests/ (`toy_brightness`) trains, is validated, exported and deployed
through leanvision's own entry points: the task tables are the only place a task plugs in."""

from __future__ import annotations

import cv2
import pytest
from typer.testing import CliRunner

from leanvision.core import ModelCard
from leanvision.core.tasks import DEPLOY_TASKS
from leanvision.data.labelled import load_labelled_set
from leanvision.data.tasks import TORCH_TASKS
from leanvision.export import export_model
from leanvision.runtime import load_predictor
from leanvision.training import train
from leanvision.training.config import (
    AmpMode,
    DataOptions,
    EmaOptions,
    LoaderOptions,
    ModelOptions,
    OptimizerOptions,
    ScheduleOptions,
    TrainConfig,
)
from tests.tasks import toy_brightness as toy
from tests.templates.task_contract import TaskContractTests


@pytest.fixture(scope="module")
def toy_task(tmp_path_factory):
    """The toy task registered for this module: its sets, a trained run and its ONNX export."""
    import torch

    root = tmp_path_factory.mktemp("toy")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with toy.registered():
        train_dir, val_dir = toy.write_set(root / "train", 8, seed=0), toy.write_set(root / "val", 4, seed=1)
        config = TrainConfig(
            data=DataOptions(train=train_dir, val=val_dir, input_size=(32, 32)),
            model=ModelOptions(name=toy.MODEL), optimizer=OptimizerOptions(lr=0.1),
            schedule=ScheduleOptions(epochs=12, warmup_iters=2, final_lr=0.01), ema=EmaOptions(enabled=False),
            amp=AmpMode.OFF, loader=LoaderOptions(batch_size=4, workers=0, threads=1), output=root / "run",
        )
        result = train(config, progress=False)
        exported = export_model(root / "run", format="onnx", out=root / "model")
        yield {"root": root, "val": val_dir, "result": result, "exported": exported}
    torch.set_num_threads(threads)
    assert toy.TASK not in DEPLOY_TASKS and toy.TASK not in TORCH_TASKS, "the toy task's rows outlived it"


class TestToyTaskContract(TaskContractTests):
    @pytest.fixture
    def contract_task(self, toy_task):
        return toy.TASK

    @pytest.fixture
    def contract_exported(self, toy_task):
        return toy_task["root"] / "model"

    @pytest.fixture
    def contract_labelled(self, toy_task):
        return toy_task["val"]

    @pytest.fixture
    def contract_result_type(self):
        return int

    @pytest.fixture
    def contract_run(self, toy_task):
        return toy_task["root"] / "run"


def test_the_toy_task_learns_what_it_is_scored_on(toy_task):
    result = toy_task["result"]
    assert result.metric == "accuracy" and result.best == 1.0, result
    card = ModelCard.load(toy_task["root"] / "model")
    assert card.task == toy.TASK and [o.name for o in card.outputs] == ["logits"]
    labelled = load_labelled_set(toy_task["val"], card)
    images = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in labelled.files]
    with load_predictor(toy_task["root"] / "model") as predictor:
        predicted = predictor(images)
    assert predicted == list(labelled.truth) and labelled.scorer()(predicted) == {"accuracy": 1.0}


def test_leanvision_val_reports_the_toy_tasks_figure(toy_task):
    from leanvision.cli.main import app

    shown = CliRunner().invoke(app, ["val", str(toy_task["root"] / "run"), str(toy_task["val"])])
    assert shown.exit_code == 0 and "accuracy 1.000" in shown.output, shown.output


def test_a_task_cannot_get_a_second_row(toy_task):
    with pytest.raises(ValueError, match="already has"):
        toy.register_torch_task(TORCH_TASKS[toy.TASK])
    with pytest.raises(ValueError, match="already has"):
        toy.register_deploy_task(DEPLOY_TASKS[toy.TASK])
