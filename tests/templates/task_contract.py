"""Contract test template: what every task's rows in the two task tables must do.

A task's test module subclasses `TaskContractTests` (as `TestSomething`) and supplies:

- `contract_task`: the task value (its key in `core.tasks.DEPLOY_TASKS` and `data.tasks.TORCH_TASKS`);
- `contract_exported`: a tiny exported model directory of the task (model file, card,
  `parity.json` from the export's parity check);
- `contract_labelled`: a tiny labelled set of the task, with the model's classes;
- `contract_result_type`: the type the task's predictor returns per image;
- `contract_run`: a run directory `leanvision.training.train` wrote for the task (its
  `metrics.jsonl`), or None where the task's learning is tested elsewhere (say where).

Every row entry must import; the predictor `runtime.load_predictor` opens for the card is the
row's, and returns one result of the task's type per image; the labelled-set reader and its
scorer score those predictions; the export's parity check passed; training lowered the loss.
"""

from __future__ import annotations

import dataclasses
import json
import math

import cv2
import pytest

from leanvision.core import ModelCard
from leanvision.core.tasks import DEPLOY_TASKS, load_object
from leanvision.data.labelled import load_labelled_set
from leanvision.data.tasks import TORCH_TASKS
from leanvision.runtime import load_predictor


class TaskContractTests:
    def test_both_rows_name_importable_pieces(self, contract_task):
        rows = [DEPLOY_TASKS[contract_task], TORCH_TASKS[contract_task]]
        for row in rows:
            for field in dataclasses.fields(row):
                value = getattr(row, field.name)
                if isinstance(value, str) and ":" in value:
                    assert load_object(value) is not None, f"{row.task}.{field.name} = {value}"

    def test_the_predictor_is_the_rows_and_returns_the_tasks_results(self, contract_task, contract_exported,
                                                                     contract_labelled, contract_result_type):
        card = ModelCard.load(contract_exported)
        files = load_labelled_set(contract_labelled, card).files[:3]
        images = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
        with load_predictor(contract_exported) as predictor:
            assert type(predictor) is load_object(DEPLOY_TASKS[contract_task].predictor)
            results = predictor(images)
        assert len(results) == len(images)
        assert all(isinstance(r, contract_result_type) for r in results), [type(r) for r in results]

    def test_the_labelled_set_scores_the_predictors_results(self, contract_exported, contract_labelled):
        card = ModelCard.load(contract_exported)
        labelled = load_labelled_set(contract_labelled, card)
        assert len(labelled.files) == len(labelled.truth) > 0 and all(f.is_file() for f in labelled.files)
        images = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in labelled.files]
        with load_predictor(contract_exported) as predictor:
            predictions = predictor(images)
        figures = labelled.scorer()(predictions)
        assert math.isfinite(figures[labelled.metric]), figures

    def test_the_export_parity_check_passed(self, contract_exported):
        report = json.loads((contract_exported / "parity.json").read_text())
        assert report["passed"] and report["runs"], report

    def test_training_lowered_the_loss(self, contract_run):
        if contract_run is None:
            pytest.skip("this task's learning is tested by its own overfit test")
        from leanvision.training.hooks.metrics_log import read_rows

        losses = [row["loss"] for row in read_rows(contract_run)]
        assert len(losses) >= 2 and losses[-1] < losses[0], losses
