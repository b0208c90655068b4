"""`leanvision quantize` end to end, and bad input: one-line errors with exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from leanvision.core import CARD_FILENAME, ModelCard, Precision
from tests.compression.tiny import DAMAGED_LAYER
from tests.helpers import run_cli

pytestmark = pytest.mark.xdist_group("compression_model")


@pytest.mark.slow
def test_cli_end_to_end_with_a_budget_on_onnxruntime(damaged_onnx, tiny_data, tmp_path):
    out = tmp_path / "int8"
    code, stdout, stderr = run_cli([
        "quantize", str(damaged_onnx), "--calib", str(tiny_data), "--val", str(tiny_data), "--backend", "onnxruntime",
        "--out", str(out), "--max-drop", "0.5", "--calib-size", "6", "--sensitivity-images", "1",
        "--bench-seconds", "0.1", "--json", str(tmp_path / "report.json")])
    assert code == 0, stderr
    assert "accuracy budget 0.5 points: reached" in stdout
    assert f"most sensitive layers: {DAMAGED_LAYER}" in stdout
    assert "images/s measured here" in stdout and str(out / "quant_report.html") in stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["budget"]["reached"] and DAMAGED_LAYER in report["fp32_layers"]
    assert report["models"][-1]["drop"] <= 0.5
    assert ModelCard.load(out).precision is Precision.MIXED
    assert (out / "model.onnx").is_file() and not (out / "model.xml").exists()


def _error_line(code: int, stderr: str) -> str:
    assert code == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("leanvision: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def _quantize(model: Path, calib: Path, val: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli(["quantize", str(model), "--calib", str(calib), "--val", str(val), "--backend", "onnxruntime",
                    "--out", str(out), "--bench-seconds", "0", *extra])


def test_an_unmatched_keep_fp32_pattern_lists_close_names(tiny_onnx, tiny_data, tmp_path):
    code, _, stderr = _quantize(tiny_onnx, tiny_data, tiny_data, tmp_path / "o", "--keep-fp32", r"fpn\.inner_block\.0\.0/Conv")
    line = _error_line(code, stderr)
    assert "matches no node name" in line and "fpn.inner_blocks.0.0/Conv" in line
    assert not (tmp_path / "o").exists()


def test_a_missing_card_is_an_error(tiny_onnx, tiny_data, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(tiny_onnx / "model.onnx", model)
    code, _, stderr = _quantize(model, tiny_data, tiny_data, tmp_path / "o")
    assert "model card not found" in _error_line(code, stderr)


def test_an_int8_model_is_refused(tiny_onnx, tiny_data, tmp_path):
    model = shutil.copytree(tiny_onnx, tmp_path / "model")
    ModelCard.load(model).replace(precision=Precision.INT8).save(model)
    code, _, stderr = _quantize(model, tiny_data, tiny_data, tmp_path / "o")
    assert "already quantized" in _error_line(code, stderr)


def _images(root: Path, count: int, *, gray: bool = False, broken: bool = False) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        path = root / f"img_{i}.png"
        if broken:
            path.write_bytes(b"not a png")
        else:
            shape = (128, 128) if gray else (128, 128, 3)
            assert cv2.imwrite(str(path), rng.integers(0, 255, shape, dtype=np.uint8))
    return root


@pytest.mark.parametrize(("calib", "message"), [
    ("empty", "no image files in the calibration set"),
    ("broken", "no readable image in the calibration set"),
    ("gray", "are grayscale but the model takes colour"),
    ("missing", "calibration set not found"),
])
def test_bad_calibration_sets(calib, message, tiny_onnx, tiny_data, tmp_path):
    path = tmp_path / calib
    if calib == "empty":
        path.mkdir()
    elif calib != "missing":
        _images(path, 3, gray=calib == "gray", broken=calib == "broken")
    code, _, stderr = _quantize(tiny_onnx, path, tiny_data, tmp_path / "o")
    assert message in _error_line(code, stderr)


def test_a_validation_set_without_labels_is_refused(tiny_onnx, tiny_data, tmp_path):
    val = _images(tmp_path / "val", 3)
    code, _, stderr = _quantize(tiny_onnx, tiny_data, val, tmp_path / "o")
    assert "the validation set needs labels" in _error_line(code, stderr)


def test_other_bad_options(tiny_onnx, tiny_data, tmp_path):
    code, _, stderr = run_cli(["quantize", str(tiny_onnx), "--calib", str(tiny_data), "--val", str(tiny_data),
                               "--backend", "tensorrt", "--out", str(tmp_path / "o")])
    assert "'--backend': 'tensorrt' is not one of 'onnxruntime', 'openvino'" in _error_line(code, stderr)
    code, _, stderr = _quantize(tiny_onnx, tiny_data, tiny_data, tiny_onnx)
    assert "--out is the input model directory" in _error_line(code, stderr)
    code, _, stderr = _quantize(tiny_onnx, tiny_data, tiny_data, tmp_path / "o", "--calib-sweep", "1,x")
    assert "--calib-sweep takes image counts" in _error_line(code, stderr)
    code, _, stderr = _quantize(tiny_onnx, tiny_data, tiny_data, tmp_path / "o", "--calib-select", "best")
    assert "'--calib-select': 'best' is not one of 'random', 'diverse', 'similar'" in _error_line(code, stderr)
    only_ir = tmp_path / "ir"
    only_ir.mkdir()
    (only_ir / "model.xml").write_text("<net/>")
    shutil.copy(tiny_onnx / CARD_FILENAME, only_ir)
    code, _, stderr = _quantize(only_ir, tiny_data, tiny_data, tmp_path / "o")
    assert "export with --format onnx" in _error_line(code, stderr)
