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
    "leanvision.runtime.predictor",
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
