"""Every task row of the two task tables is held to the contract (tests/templates/task_contract.py).

A task added as a row without a contract test class would ship untested pieces; this fails
then, naming the task. Contract classes are found in the test sources: a class deriving from
`TaskContractTests` whose `contract_task` fixture returns `Task.<NAME>`.
"""

from __future__ import annotations

import re
from pathlib import Path

from leanvision.core import Task
from leanvision.core.tasks import DEPLOY_TASKS
from leanvision.data.tasks import TORCH_TASKS

TESTS = Path(__file__).resolve().parents[1]
CONTRACT = re.compile(r"class \w+\(TaskContractTests\):.*?def contract_task\(.*?\):\s*return Task\.(\w+)", re.S)


def contracted_tasks() -> set[Task]:
    found = set()
    for path in TESTS.rglob("test_*.py"):
        found |= {Task[name] for name in CONTRACT.findall(path.read_text())}
    return found


def test_both_worlds_know_the_same_tasks():
    assert set(DEPLOY_TASKS) == set(TORCH_TASKS)


def test_every_shipped_task_row_passes_the_contract_template():
    missing = set(DEPLOY_TASKS) - contracted_tasks()
    assert not missing, f"task rows without a TaskContractTests subclass: {sorted(t.value for t in missing)}"


def test_the_finder_sees_a_contract_class():
    # The finder itself must work, or the test above could not fail.
    text = "class TestX(TaskContractTests):\n    @pytest.fixture\n    def contract_task(self):\n        return Task.SEGMENT\n"
    assert CONTRACT.findall(text) == ["SEGMENT"]
