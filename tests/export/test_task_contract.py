"""The detect task's rows pass the task contract (tests/templates/task_contract.py)."""

from __future__ import annotations

import pytest

from leanvision.core import Detections, Task
from tests.templates.task_contract import TaskContractTests


class TestDetectTaskContract(TaskContractTests):
    @pytest.fixture
    def contract_task(self):
        return Task.DETECT

    @pytest.fixture
    def contract_exported(self, onnx_export):
        return onnx_export.out

    @pytest.fixture
    def contract_labelled(self, tiny_coco):
        return tiny_coco  # classes cell, debris: the slim checkpoint's

    @pytest.fixture
    def contract_result_type(self):
        return Detections

    @pytest.fixture
    def contract_run(self):
        return None  # learning: tests/training/test_overfit_retinanet.py overfits the slim RetinaNet
