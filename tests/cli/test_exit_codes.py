"""Batch commands' exit codes (issue 18, defect 4): every item done, 0; some skipped, 1 with a
one-line account on stderr (how many, which files, why); none done, a one-line error, 2.
`predict` on a tiny exported RetinaNet, `val` on a checkpoint of the tiny registered model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.helpers import run_cli
from tests.training.conftest import tiny_config


def _one_error(code: int, stderr: str) -> str:
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("leanvision: error: "), stderr
    return stderr


def _account(code: int, stderr: str) -> str:
    assert code == 1, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("leanvision: warning: ")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def _images(root: Path, good: int, bad: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(good):
        assert cv2.imwrite(str(root / f"good_{i}.png"), rng.integers(0, 255, (240, 260, 3), dtype=np.uint8))
    for name, data in bad.items():
        (root / name).write_bytes(data)
    return root


def test_predict_with_some_failed_images_exits_1_naming_them(model_dir, tmp_path):
    images = _images(tmp_path / "in", 1, {"broken.jpg": b"not a jpeg", "empty.png": b""})
    code, stdout, stderr = run_cli(["predict", str(model_dir), str(images), "--out", str(tmp_path / "o")])
    line = _account(code, stderr)
    assert "2 of 3 images skipped" in line and "broken.jpg" in line and "empty.png: image file is empty" in line
    assert "1 image (2 failed), 4 tiles in" in stdout and (tmp_path / "o" / "good_0.json").is_file()


def test_predict_and_check_agree_on_a_large_jpeg_whose_data_ends_early(model_dir, tmp_path):
    """A 260x240 JPEG whose frame header says 14000x14000: over band_above_mb, predict reads
    it in bands (libvips), which used to pass the missing rows as grey: "1 images (0 failed)"."""
    from leanvision.data.images import verify_image
    from tests.largeimage.test_jpeg_bands import enlarged_jpeg

    images = _images(tmp_path / "in", 1, {})
    written, data = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 255, (240, 260, 3), dtype=np.uint8))
    assert written
    (tmp_path / "small.jpg").write_bytes(data.tobytes())
    big = enlarged_jpeg(images / "big.jpg", tmp_path / "small.jpg", 14000)
    assert verify_image(big) == "the file is truncated"
    code, stdout, stderr = run_cli(["predict", str(model_dir), str(images), "--out", str(tmp_path / "o")])
    assert "1 of 2 images skipped: " + f"{big}: the file is truncated" in _account(code, stderr)
    assert "1 image (1 failed)" in stdout
    code, _, stderr = run_cli(["predict", str(model_dir), str(big), "--out", str(tmp_path / "one.json")])
    assert f"{big}: the file is truncated" in _one_error(code, stderr)


def test_predict_refuses_a_tiff_declaring_a_huge_size_from_its_header(model_dir, tmp_path):
    from tests.data.test_corrupt_images import hostile_tiff

    bomb = hostile_tiff(tmp_path / "bomb2.tif", 100000)
    code, _, stderr = run_cli(["predict", str(model_dir), str(bomb), "--out", str(tmp_path / "one.json")])
    line = _one_error(code, stderr)
    assert f"{bomb}: the header declares a 100000x100000 image, which tifffile must decode whole" in line
    assert "MemoryError" not in line


def test_predict_with_every_image_failed_is_a_one_line_error(model_dir, tmp_path):
    images = _images(tmp_path / "in", 0, {f"bad_{i}.png": b"" for i in range(5)})
    code, _, stderr = run_cli(["predict", str(model_dir), str(images), "--out", str(tmp_path / "o")])
    line = _one_error(code, stderr)
    # The first few files are named, the rest counted, and the full list's place given.
    assert "no image processed: 5 of 5 images skipped" in line and "bad_0.png: image file is empty" in line
    assert "and 2 more" in line and "summary.json" in line
    assert len(json.loads((tmp_path / "o" / "summary.json").read_text())["failed"]) == 5


def test_skip_account_names_the_first_files_and_counts_the_rest():
    from leanvision.cli.ui import skip_account

    skipped = [(f"f{i}.jpg", "the file is\ntruncated") for i in range(7)]
    line = skip_account(skipped, noun="image", total=10, listed_in=Path("out/summary.json"))
    assert line == ("7 of 10 images skipped: f0.jpg: the file is truncated; f1.jpg: the file is truncated; "
                    "f2.jpg: the file is truncated; and 4 more (all listed in out/summary.json)")
    assert skip_account(skipped[:1], noun="image", total=1) == "1 of 1 image skipped: f0.jpg: the file is truncated"


@pytest.fixture
def checkpoint(tiny_run, tiny_registered) -> tuple[Path, Path]:
    """(the tiny run's best.pt, its squares val set)."""
    run, _, data = tiny_run
    return run / "best.pt", data / "val"


def _val_copy(source: Path, dst: Path, broken: int) -> Path:
    shutil.copytree(source, dst)
    for path in sorted((dst / "images").iterdir())[:broken]:
        path.write_bytes(b"\x89PNG truncated")
    return dst


def test_val_with_some_undecodable_images_exits_1_naming_them(checkpoint, tmp_path):
    ckpt, data = checkpoint
    val = _val_copy(data, tmp_path / "val", broken=1)
    code, stdout, stderr = run_cli(["val", str(ckpt), str(val), "--out", str(tmp_path / "o")])
    line = _account(code, stderr)
    assert "1 item skipped" in line and "img_000.png" in line
    assert "1 image skipped" in stdout and "1 images" not in stdout
    assert "mAP@0.5" in stdout and json.loads((tmp_path / "o" / "metrics.json").read_text())["skipped"]


@pytest.mark.parametrize("bbox", [["[/b]", 1, 2, 3], [float("nan"), 3, 18, 27]])
def test_val_prints_a_bad_label_as_written_never_as_markup(checkpoint, tmp_path, bbox):
    """Rich markup in the label text: "[/b]" was a MarkupError (exit 3), "[nan, ...]" vanished."""
    ckpt, data = checkpoint
    val = _val_copy(data, tmp_path / "val", broken=0)
    labels = json.loads((val / "annotations.json").read_text())
    labels["annotations"][0]["bbox"] = bbox
    (val / "annotations.json").write_text(json.dumps(labels))
    code, _, stderr = run_cli(["val", str(ckpt), str(val), "--out", str(tmp_path / "o")])
    assert "annotation 1 has no valid bbox" in _account(code, stderr)
    assert f"(4 finite numbers x, y, w, h): {bbox!r} (left out)" in stderr and "internal error" not in stderr


def test_val_with_a_label_for_a_missing_image_exits_1(checkpoint, tmp_path):
    ckpt, data = checkpoint
    val = _val_copy(data, tmp_path / "val", broken=0)
    (val / "images" / "img_001.png").unlink()
    code, _, stderr = run_cli(["val", str(ckpt), str(val), "--out", str(tmp_path / "o")])
    assert "img_001.png" in _account(code, stderr)


def test_val_with_no_decodable_image_is_a_one_line_error(checkpoint, tmp_path):
    ckpt, data = checkpoint
    val = _val_copy(data, tmp_path / "val", broken=4)
    code, _, stderr = run_cli(["val", str(ckpt), str(val), "--out", str(tmp_path / "o")])
    assert "no image of the evaluation set could be read" in _one_error(code, stderr)


def test_val_on_a_clean_set_exits_0(checkpoint, tmp_path):
    ckpt, data = checkpoint
    code, stdout, stderr = run_cli(["val", str(ckpt), str(data), "--out", str(tmp_path / "o")])
    assert code == 0, stderr
    assert "mAP@0.5" in stdout and (tmp_path / "o" / "metrics.json").is_file()


def test_quantize_with_unreadable_calibration_and_val_images_exits_1_and_json_stays_clean(model_dir, tmp_path):
    """The model is written, calibrated and scored on the readable images; exit 1 names both
    skipped files, the label left out of --val and its image (left out whole: scored short of
    a box it would be wrong); with `--json -` stdout is the report alone."""
    from leanvision.core import Detections
    from leanvision.data.formats import DetectionSet, Format, ImageRecord, write_detection

    calib = _images(tmp_path / "calib", 3, {"zz_broken.png": b"garbage"})
    records = [ImageRecord(p.name, 260, 240, Detections.from_boxes(np.array([[10, 10, 60, 70]], np.float32), [0]), i)
               for i, p in enumerate(sorted(calib.glob("good_*.png")), start=1)]
    write_detection(DetectionSet(("class0", "class1"), records, calib), tmp_path / "val", Format.COCO, copy_images=True)
    (broken_val,) = tmp_path.glob("val/**/good_1.png")
    broken_val.unlink()  # a link to the calibration image: replaced, not written through
    broken_val.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    labels = json.loads((tmp_path / "val" / "annotations.json").read_text())
    labels["annotations"].append({"id": 99, "image_id": 1, "category_id": 1, "bbox": ["[/b]", 1, 2, 3]})
    (tmp_path / "val" / "annotations.json").write_text(json.dumps(labels))
    code, stdout, stderr = run_cli(["quantize", str(model_dir), "--calib", str(calib), "--val", str(tmp_path / "val"),
                                    "--backend", "onnxruntime", "--out", str(tmp_path / "int8"), "--bench-seconds", "0",
                                    "--json", "-"])
    line = _account(code, stderr)
    assert "4 of 8 items skipped" in line and "zz_broken.png: not an image file" in line and "good_1.png" in line
    assert "annotation 99 has no valid bbox (4 finite numbers x, y, w, h): ['[/b]', 1, 2, 3]" in line
    report = json.loads(stdout)
    assert report["calibration"]["skipped"] and (tmp_path / "int8" / "model.onnx").is_file()
    assert [text.split(": ")[0] for text in report["validation"]["skipped"]] == [str(broken_val)]
    # good_0 left out whole for its bad label, good_1 undecodable: good_2 alone is scored
    assert report["validation"] | {"skipped": None} == {"source": str(tmp_path / "val"), "images": 1, "files": 2,
                                                        "objects": 2, "skipped": None}


def test_train_that_skipped_an_image_exits_1_with_the_account(tiny_run, tiny_registered, tmp_path):
    """Training is batch work: the model is trained on the rest, the skipped file is named, exit 1."""
    _, _, data = tiny_run
    shutil.copytree(data, tmp_path / "data")
    (tmp_path / "data" / "train" / "images" / "img_001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_config(tmp_path / "data", tmp_path / "run", epochs=1).to_dict()))
    code, stdout, stderr = run_cli(["train", "--config", str(recipe)])
    line = _account(code, stderr)
    assert "1 item skipped: " in line and "img_001.png" in line and line.endswith("; trained on the rest")
    assert f"{tmp_path / 'run'}: 1 epoch, best val" in stdout and (tmp_path / "run" / "best.pt").is_file()
