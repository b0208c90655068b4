"""kill -9 during `data convert`, `export` and `quantize`: the output folder is the previous
complete one, and the next run leaves the new complete one with nothing else beside it.

Each command runs in a real process (tests/kill9.py's launcher forks it) that SIGKILLs itself
right before it renames its last file into the staging directory: the moment the most work
is done and nothing is committed. All three commit through `core.io.staging_dir` and
`replace_dir` (whose every step tests/core/test_io_kill.py kills). The staging directory it leaves beside the output is
removed by the next writer of that output, whose lock check tells a dead writer from a live one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.kill9 import Launcher
from tests.training.conftest import write_squares_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    launcher = Launcher(tmp_path_factory.mktemp("launcher"))
    yield launcher
    launcher.close()


def _contents(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _old_kept_then_new(launcher: Launcher, out: Path, old_args: list | None, new_args: list, last_file: str, *,
                       finish: bool = True) -> None:
    """Run `old_args` to the end (None: `out` is already there), `new_args` killed before
    `last_file` enters its staging directory, then (`finish`) `new_args` to the end; check
    `out` and its parent after each."""
    if old_args is not None:
        first = launcher.start(old_args)
        assert first.wait() == 0, first.stderr
    old = _contents(out)
    beside = sorted(p.name for p in out.parent.iterdir())

    killed = launcher.start(new_args, kill=f"before:{last_file}:1")
    assert killed.killed, f"exit {killed.code}: the kill point {last_file} was never reached\n{killed.stderr}"
    assert _contents(out) == old, "a killed run changed the previous output"
    left = [p.name for p in out.parent.iterdir() if p.name not in beside]
    assert left and all(n.startswith(f".{out.name}.") and n.endswith(".tmp") for n in left), left
    if not finish:
        return

    final = launcher.start(new_args)
    assert final.wait() in (0, 1), final.stderr
    assert _contents(out) != old and last_file in {p.name for p in out.iterdir()}
    assert sorted(p.name for p in out.parent.iterdir()) == beside, "the dead run's staging directory was left"


def test_a_killed_conversion_keeps_the_previous_one(launcher, tmp_path):
    old_src = write_squares_set(tmp_path / "a", images=3, seed=1)
    new_src = write_squares_set(tmp_path / "b", images=4, seed=2)
    out = tmp_path / "out" / "yolo"
    _old_kept_then_new(launcher, out, ["data", "convert", old_src, out, "--to", "yolo"],
                       ["data", "convert", new_src, out, "--to", "yolo"], ".leanvision-convert.json")


def test_a_killed_export_keeps_the_previous_one(launcher, tmp_path):
    from tests.export.slim import lively_slim, save_slim_checkpoint

    checkpoint = save_slim_checkpoint(tmp_path / "best.pt", lively_slim())
    out = tmp_path / "out" / "model"
    out.mkdir(parents=True)  # a previous export (its content does not matter here)
    (out / "model.onnx").write_bytes(b"the previous model")
    (out / "model_card.json").write_text("{}")
    # One export (~13 s) killed as it commits; the next run's clean-up is the conversion's.
    _old_kept_then_new(launcher, out, None, ["export", checkpoint, "--format", "onnx", "--out", out, "--no-check"],
                       "model_card.json", finish=False)


def test_a_killed_quantization_keeps_the_previous_one(launcher, model_dir, tmp_path):
    from leanvision.core import Detections
    from leanvision.data.formats import DetectionSet, Format, ImageRecord, write_detection

    rng = np.random.default_rng(0)
    calib = tmp_path / "calib"
    calib.mkdir()
    records = []
    for i in range(3):
        assert cv2.imwrite(str(calib / f"c{i}.png"), rng.integers(0, 255, (240, 260, 3), dtype=np.uint8))
        records.append(ImageRecord(f"c{i}.png", 260, 240, Detections.from_boxes(np.array([[10, 10, 60, 70]],
                                                                                          np.float32), [0]), i + 1))
    write_detection(DetectionSet(("class0", "class1"), records, calib), tmp_path / "val", Format.COCO)
    out = tmp_path / "out" / "int8"
    common = ["quantize", model_dir, "--calib", calib, "--val", tmp_path / "val", "--backend", "onnxruntime",
              "--out", out, "--bench-seconds", "0"]
    _old_kept_then_new(launcher, out, [*common, "--calib-size", "1"], [*common, "--calib-size", "3"],
                       "quant_report.json")
