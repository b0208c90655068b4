"""`--json` on every command (issue 18, defect 4): `--json FILE` writes the JSON result to
FILE; `--json -` prints only the JSON on stdout (tables and summaries go to stderr), so the
output parses whole, as `| jq` needs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from leanvision.core import Detections, ModelCard
from leanvision.data.formats import DetectionSet, Format, ImageRecord, write_detection
from tests.helpers import run_cli


def _stdout_json(args: list[str]) -> tuple[dict, str]:
    """Run with `--json -`: (the JSON, stderr); stdout must be exactly one JSON document."""
    code, stdout, stderr = run_cli([*args, "--json", "-"])
    assert code == 0, stderr
    return json.loads(stdout), stderr


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(2):
        assert cv2.imwrite(str(root / f"img_{i}.png"), rng.integers(0, 255, (240, 260, 3), dtype=np.uint8))
    return root


def test_predict(model_dir, images, tmp_path):
    result, stderr = _stdout_json(["predict", str(model_dir), str(images), "--out", str(tmp_path / "o")])
    assert result["images"] == 2 and result["failed"] == [] and result["out"] == str(tmp_path / "o")
    assert "2 images (0 failed)" in stderr  # the human summary moved to stderr
    code, stdout, stderr = run_cli(["predict", str(model_dir), str(images), "--out", str(tmp_path / "o2"),
                                    "--json", str(tmp_path / "r.json")])
    assert code == 0, stderr
    assert "2 images (0 failed)" in stdout and json.loads((tmp_path / "r.json").read_text())["images"] == 2


def test_predict_single_image_form(model_dir, images, tmp_path):
    result, _ = _stdout_json(["predict", str(model_dir), str(images / "img_0.png"), "--out", str(tmp_path / "r.json")])
    assert result["images"] == 1 and (tmp_path / "r.json").is_file()


def test_train_and_val(tiny_run, tiny_registered, tmp_path):
    run, recipe, data = tiny_run
    result, _ = _stdout_json(["train", "--config", str(recipe), f"output={tmp_path / 'run'}"])
    assert result["epochs"] == 1 and result["run_dir"] == str(tmp_path / "run")
    result, stderr = _stdout_json(["val", str(run), str(data / "val"), "--out", str(tmp_path / "val")])
    assert result["num_images"] == 4 and "map50" in result and "mAP@0.5" in stderr
    assert json.loads((tmp_path / "val" / "metrics.json").read_text()) == result


def test_export(model_dir, tmp_path, monkeypatch):
    """The command's output routing, around a stand-in for the export itself (an ONNX export
    of a trainable model costs 10-40 s here; tests/export runs the real one)."""
    import leanvision.export

    card = ModelCard.load(model_dir)

    def export_model(checkpoint, *, out, **_):
        return SimpleNamespace(out=out, files=(model_dir / "model.onnx", model_dir / "model_card.json"), card=card,
                               parity=None, timings={"export": 1.0})

    monkeypatch.setattr(leanvision.export, "export_model", export_model)
    result, stderr = _stdout_json(["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(tmp_path / "o")])
    assert result["out"] == str(tmp_path / "o") and result["files"][0].endswith("model.onnx")
    assert "model.onnx (" in stderr and "time: export 1.0 s" in stderr


def test_profile_and_models():
    result, stderr = _stdout_json(["profile", "csrnet_mbv2", "--num-classes", "1", "--input", "64"])
    assert set(result) == {"parts", "total"} and "backbone" in stderr
    result, _ = _stdout_json(["models", "--task", "count", "--input", "64"])
    assert result["models"] and all(row["task"] == "count" for row in result["models"])


def _coco_like_the_card(root: Path, images: Path) -> Path:
    """A labelled COCO set of `images` with the tiny model's classes (class0, class1)."""
    records = [ImageRecord(p.name, 260, 240, Detections.from_boxes(np.array([[10, 10, 60, 70]], np.float32), [0]), i)
               for i, p in enumerate(sorted(images.glob("*.png")), start=1)]
    write_detection(DetectionSet(("class0", "class1"), records, images), root, Format.COCO, copy_images=True)
    return root


def test_bench(model_dir, images, tmp_path):
    data = _coco_like_the_card(tmp_path / "val", images)
    result, stderr = _stdout_json(["bench", str(model_dir), "--data", str(data), "--out", str(tmp_path / "b"),
                                   "--backends", "onnxruntime", "--batches", "1", "--requests", "1",
                                   "--seconds", "0.1"])
    assert result == json.loads((tmp_path / "b" / "bench.json").read_text()) and "wrote" in stderr


def test_data_synth_check_and_anchors(tmp_path):
    data = tmp_path / "d"
    synth, stderr = _stdout_json(["data", "synth", "--task", "detect", "--out", str(data), "--images", "4"])
    assert synth["splits"]["train"]["images"] == 4 and "4 images" in stderr
    report, stderr = _stdout_json(["data", "check", str(data / "train")])
    assert report["problems"] == 0 and "0 problems" in stderr
    fitted, stderr = _stdout_json(["data", "anchors", str(data / "train")])
    assert 0 <= fitted["coverage_before"] <= 1 and "boxes" in stderr


def test_data_convert_and_stats(tmp_path):
    data = tmp_path / "d"
    run_cli(["data", "synth", "--task", "detect", "--out", str(data), "--images", "4"])
    converted, stderr = _stdout_json(["data", "convert", str(data / "train"), str(tmp_path / "yolo"), "--to", "yolo"])
    assert (converted["images"], converted["format"], converted["left_out"]["images"]) == (4, "yolo", 0)
    assert converted["objects"] == sum(len(p.read_text().splitlines()) for p in (tmp_path / "yolo").rglob("*.txt"))
    assert "4 images" in stderr
    described, stderr = _stdout_json(["data", "stats", str(data / "train"), "--out", str(tmp_path / "s")])
    assert described == json.loads((tmp_path / "s" / "stats.json").read_text()) and "wrote" in stderr


def test_data_convert_json_accounts_for_what_is_left_out(tmp_path):
    """--skip-bad: exit 1, and the JSON says what was left out and why."""
    data = tmp_path / "d"
    run_cli(["data", "synth", "--task", "detect", "--out", str(data), "--images", "4"])
    (data / "train" / "images" / "cyto_00000.jpg").unlink()
    code, stdout, stderr = run_cli(["data", "convert", str(data / "train"), str(tmp_path / "y"), "--to", "yolo",
                                    "--skip-bad", "--json", "-"])
    result = json.loads(stdout)
    assert code == 1 and result["images"] == 3 and result["left_out"]["images"] == 1
    assert "image file is missing" in result["left_out"]["problems"][0] and "left out" in stderr
