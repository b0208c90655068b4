"""The torch-free world stays torch-free, and the import contracts of DESIGN.md hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BLOCK_TORCH = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'timm', 'nncf'):
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, BlockTorch())
"""

TORCH_FREE = [
    "leanvision",
    "leanvision.core",
    "leanvision.cli.main",
    "leanvision.runtime",
    "leanvision.runtime.load",
    "leanvision.runtime.detect",
    "leanvision.runtime.count",
    "leanvision.runtime.classify",
    "leanvision.core.classes",
    "leanvision.evaluation.classification",
    "leanvision.core.tasks",
    "leanvision.runtime.engines.onnxruntime",
    "leanvision.runtime.engines.openvino",
    "leanvision.largeimage.grid",
    "leanvision.largeimage.merge",
    "leanvision.largeimage.readers",
    "leanvision.evaluation.scores",
    "leanvision.evaluation.counting",
]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_leanvision_has_no_torch_and_no_side_effects():
    result = run_python(
        "import sys, logging, os; before = set(os.listdir('.'));"
        "import leanvision;"
        "assert 'torch' not in sys.modules, 'torch imported';"
        "assert not logging.getLogger().handlers, 'logging configured at import';"
        "assert set(os.listdir('.')) == before, 'files written at import'"
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_free_modules_import_where_torch_cannot(module):
    result = run_python(BLOCK_TORCH + f"import {module}; assert 'torch' not in sys.modules")
    assert result.returncode == 0, result.stderr


def test_the_blocker_really_blocks():
    result = run_python(BLOCK_TORCH + "import torch")
    assert result.returncode != 0 and "blocked" in result.stderr


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=root, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _cycles(graph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while (member := stack.pop()) != module:
                group.append(member)
            if group:
                found.append(sorted([module, *group]))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    """No import circle, counting imports inside functions and under TYPE_CHECKING too:
    each world's task table names its tasks' modules as strings, so no table imports them."""
    import grimp

    graph = grimp.build_graph("leanvision")
    assert "leanvision.runtime.preprocess" in graph.find_modules_directly_imported_by("leanvision.runtime.count")
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    class Graph:
        modules = frozenset(edges)

        def find_modules_directly_imported_by(self, module):
            return edges[module]

    assert _cycles(Graph()) == [["a", "b", "c"]]
