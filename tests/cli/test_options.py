"""Options (issue 18, defect 7): help shows defaults and choices, choice options refuse a bad
value in one line with exit 2, `predict --conf/--iou/--max-det`, `quantize --max-drop`'s unit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer

from leanvision.cli.main import app
from leanvision.core import CARD_FILENAME, InputSpec, ModelCard, Task
from tests.cli.conftest import TINY_INPUT_HW
from tests.helpers import run_cli


def test_quantize_help_shows_defaults_choices_and_the_budget_unit(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("TERMINAL_WIDTH", "400")
    code, stdout, _ = run_cli(["quantize", "--help"])
    assert code == 0
    help_text = " ".join(stdout.split())  # rich's box may still wrap: compare words
    for shown in ("Calibration images (not batches). [default: 300]", "<random|diverse|similar>",
                  "[default: random]", "<fp32|bf16>", "<performance|mixed>", "<minmax|entropy|percentile>",
                  "<onnxruntime|openvino>", "[default: 8]", "points of mAP@0.5", "objects per image of MAE"):
        assert shown in help_text, shown


def test_no_help_text_writes_its_own_default():
    """A literal "[default: ...]" in a help string is rich markup (swallowed): defaults are the options'."""
    group = typer.main.get_command(app)
    commands = [c for name, c in group.commands.items() if name != "data"]
    for command in commands:
        for param in command.params:
            assert "[default:" not in (getattr(param, "help", None) or ""), (command.name, param.name)


_REQUIRED = {
    "predict": ["predict", "m", "x", "--out", "o"],
    "quantize": ["quantize", "m", "--calib", "c", "--val", "v", "--out", "o", "--backend", "onnxruntime"],
    "export": ["export", "c", "--out", "o"],
    "bench": ["bench", "m", "--data", "d", "--out", "o"],
}


@pytest.mark.parametrize(("command", "option", "choice"), [
    ("predict", "--backend", "openvino"), ("predict", "--reader", "tifffile"), ("predict", "--merge", "wbf"),
    ("quantize", "--backend", "openvino"), ("quantize", "--calib-select", "diverse"), ("quantize", "--fallback", "bf16"),
    ("quantize", "--preset", "mixed"), ("quantize", "--ort-method", "entropy"), ("export", "--format", "openvino"),
    ("bench", "--score", "mlperf-gate"),
])
def test_fixed_sets_are_choices(command, option, choice):
    """Help lists the choices; a value outside them is the standard one-line error naming both."""
    code, _, stderr = run_cli([*_REQUIRED[command], option, "nope"])
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert f"Invalid value for '{option}'" in stderr and "'nope' is not one of" in stderr and f"'{choice}'" in stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["quantize", "m", "--calib", "c", "--val", "v", "--out", "o", "--backend", "tensorrt"],
     "'--backend': 'tensorrt' is not one of 'onnxruntime', 'openvino'"),
    (["predict", "m", "x", "--out", "o", "--backend", "tensorrt"], "'tensorrt' is not one of 'onnxruntime', 'openvino'"),
    (["bench", "m", "--data", "d", "--out", "o", "--score", "best"], "'best' is not one of 'tianchi'"),
    (["predict", "m", "x", "--out", "o", "--conf", "1.5"], "'--conf': Input should be less than or equal to 1, got '1.5'"),
    (["predict", "m", "x", "--out", "o", "--iou=-0.1"], "'--iou': Input should be greater than or equal to 0, got '-0.1'"),
    (["predict", "m", "x", "--out", "o", "--max-det", "0"], "'--max-det': Input should be greater than or equal to 1, got '0'"),
])
def test_a_bad_value_is_one_line_with_exit_2(args, expected):
    code, _, stderr = run_cli(args)
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith("leanvision: error: "), stderr
    assert expected in stderr and "Value error" not in stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["data", "convert", "a", "b"], "Missing option '--to' (choose from: coco, voc, yolo)"),
    (["export", "c", "--out", "o"], "Missing option '--format' / '-f' (choose from: onnx, openvino)"),
    (["quantize", "m", "--calib", "c", "--val", "v", "--out", "o"],
     "Missing option '--backend' (choose from: onnxruntime, openvino)"),
    (["data", "synth", "--out", "o"], "Missing option '--task' (choose from: detect, "),
])
def test_a_missing_choice_option_is_one_line_listing_the_choices(args, expected):
    code, _, stderr = run_cli(args)
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith("leanvision: error: "), stderr
    assert expected in stderr and "\t" not in stderr


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """One image of the model's input size: one tile, so the model's own NMS is all there is."""
    path = tmp_path_factory.mktemp("image") / "img.png"
    assert cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (*TINY_INPUT_HW, 3), dtype=np.uint8))
    return path


def _detections(model_dir: Path, image: Path, out: Path, *flags: str) -> list[dict]:
    code, _, stderr = run_cli(["predict", str(model_dir), str(image), "--out", str(out), *flags])
    assert code == 0, stderr
    return json.loads(out.read_text())["detections"]


def test_predict_conf_iou_max_det_override_the_card(model_dir, image, tmp_path):
    card = ModelCard.load(model_dir).postprocess
    default = _detections(model_dir, image, tmp_path / "d.json")
    assert len(default) > 3 and min(d["score"] for d in default) >= card.score_threshold
    assert len(_detections(model_dir, image, tmp_path / "m.json", "--max-det", "2")) == 2
    strict = _detections(model_dir, image, tmp_path / "c.json", "--conf", "0.9")
    assert 0 < len(strict) < len(default) and min(d["score"] for d in strict) > 0.9
    # IoU 0: any overlap suppresses, so no two kept boxes of a class overlap.
    lone = _detections(model_dir, image, tmp_path / "i.json", "--iou", "0")
    assert len(lone) < len(default)
    for i, a in enumerate(lone):
        for b in lone[i + 1:]:
            if a["category_id"] == b["category_id"]:
                ax, ay, aw, ah = a["bbox"]
                bx, by, bw, bh = b["bbox"]
                # Disjoint, up to the 0.01 px rounding of the JSON.
                assert min(ax + aw, bx + bw) <= max(ax, bx) + 0.02 or min(ay + ah, by + bh) <= max(ay, by) + 0.02


def test_predict_max_det_caps_each_image_not_each_tile(model_dir, tmp_path):
    """A 260x240 image is 4 tiles of the 224x200 model: the cap holds for the merged image (a
    cap per tile alone gave 1, 4, 5 detections here; the pipeline test checks which are kept)."""
    path = tmp_path / "four_tiles.png"
    assert cv2.imwrite(str(path), np.random.default_rng(2).integers(0, 255, (240, 260, 3), dtype=np.uint8))
    assert len(_detections(model_dir, path, tmp_path / "all.json", "--max-det", "300")) > 3
    for cap in (1, 2, 3):
        assert len(_detections(model_dir, path, tmp_path / f"{cap}.json", "--max-det", str(cap))) == cap


@pytest.fixture
def count_model(model_dir, tmp_path) -> Path:
    """A model directory whose card is a counting card (the flags are refused before the engine opens)."""
    root = shutil.copytree(model_dir, tmp_path / "count")
    ModelCard(name="tiny_counter", task=Task.COUNT, class_names=("person",), input=InputSpec(height=64, width=96),
              output_stride=8).save(root)
    assert (root / CARD_FILENAME).is_file()
    return root


def test_predict_detection_flags_on_a_counting_model_name_the_task(count_model, image, tmp_path):
    code, _, stderr = run_cli(["predict", str(count_model), str(image), "--out", str(tmp_path / "o"), "--conf", "0.5",
                               "--max-det", "3"])
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert "--conf, --max-det: detection post-processing; 'tiny_counter' is a model of task count" in stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("value", "warned"), [("0.01", True), ("0.5", False), ("0", False)])
def test_max_drop_that_looks_like_a_fraction_is_warned_about(model_dir, tmp_path, value, warned):
    # --val is missing: the run stops at the first check, after the option checks.
    code, _, stderr = run_cli(["quantize", str(model_dir), "--calib", str(tmp_path), "--val", str(tmp_path / "none"),
                               "--backend", "onnxruntime", "--out", str(tmp_path / "o"), "--max-drop", value])
    assert code == 2, stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("leanvision: warning: --max-drop")]
    assert len(warnings) == int(warned), stderr
    if warned:
        assert "0.01 allows mAP@0.5 to fall by 0.0001" in warnings[0]


def test_max_drop_of_a_counting_model_is_not_warned_about(count_model, tmp_path):
    code, _, stderr = run_cli(["quantize", str(count_model), "--calib", str(tmp_path), "--val", str(tmp_path / "none"),
                               "--backend", "onnxruntime", "--out", str(tmp_path / "o"), "--max-drop", "0.01"])
    assert code == 2 and "warning" not in stderr, stderr
