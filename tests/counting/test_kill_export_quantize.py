"""kill -9 during `leanvision export` and `leanvision quantize`: the output directory is the
previous complete one (or absent), or the new complete one, never a mix or a half file.

Real processes (children of a launcher that imported leanvision once, see tests/kill9.py),
killed with SIGKILL at a fixed delay and the moment the staging directory holds one of the
last files before the commit (`parity.json`, the quantization report); the commit itself,
killed at each of its steps, is tests/core/test_io_kill.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from leanvision.core import CARD_FILENAME, ModelCard, Precision
from tests.kill9 import Launcher, kill_after, poll_kill

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    # What every child would import again: the model, the exporter, the engines.
    launcher = Launcher(tmp_path_factory.mktemp("launcher"), preload=(
        "leanvision.export.api", "leanvision.compression.quantize.api", "leanvision.models.tasks.count.variants",
        "torch.onnx._internal.exporter._core", "onnxscript", "onnx", "onnxruntime", "openvino"))
    yield launcher
    launcher.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def _staged(out: Path, name: str):
    """True once a staging sibling of `out` holds `name` (what is written last before the commit)."""
    return lambda: any(out.parent.glob(f".{out.name}.*.tmp/{name}"))


def test_kill_during_export_keeps_the_previous_export(launcher, count_checkpoint, onnx_model, tmp_path):
    out = shutil.copytree(onnx_model.out, tmp_path / "exported")
    previous = _files(out)
    args = ["export", count_checkpoint, "--format", "onnx", "--out", out]
    assert kill_after(launcher.start(args), 1.0), "the export ended within 1 s"
    assert _files(out) == previous
    # Killed as parity.json is staged, just before the swap; on an idle machine the swap may
    # win the race. Either way `out` is whole, and the export is deterministic: the same bytes.
    poll_kill(launcher.start(args), _staged(out, "parity.json"))
    assert _files(out) == previous


def test_kill_during_quantize_keeps_the_previous_result(launcher, onnx_model, blob_data, tmp_path):
    out = tmp_path / "int8"
    args = ["quantize", onnx_model.out, "--calib", blob_data / "train", "--val", blob_data / "val",
            "--backend", "onnxruntime", "--out", out, "--calib-size", "2", "--bench-seconds", "0"]
    first = launcher.start(args)
    assert first.wait() == 0, first.stderr
    previous = _files(out)
    assert {"model.onnx", CARD_FILENAME, "quant_report.json"} <= previous.keys()
    assert ModelCard.load(out).precision is Precision.INT8
    # The model and card are staged, the reports are being written.
    assert poll_kill(launcher.start(args), _staged(out, "quant_report.json")), "the quantization ended before the kill"
    # The kill lands a few milliseconds after the report is staged: before the swap (the
    # previous result) or, on a busy machine, after it (the new result, whole).
    now = _files(out)
    assert now == previous or (now.keys() == previous.keys() and ModelCard.load(out).precision is Precision.INT8
                                and json.loads(now["quant_report.json"])), sorted(now)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "int8")
    assert all(name.startswith(".int8.") for name in leftovers), leftovers
