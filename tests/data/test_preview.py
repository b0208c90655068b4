"""`preview_grid` and `load_augment_steps`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from leanvision.core import ConfigError, DataError, Detections
from leanvision.data.formats import DetectionSet, Format, ImageRecord, write_detection
from leanvision.data.preview import draw_boxes, grid_shape, load_augment_steps, preview_grid

STEPS = [
    {"op": "replace_background", "p": 0.5},
    {"op": "online_crop_resize", "crop": 96, "size": 48},
    {"op": "random_flip"},
]


def make_set(root: Path, *, corrupt: bool = False) -> Path:
    """Three 120x90 images (one negative), plus an unreadable one if `corrupt`."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    records = []
    for i in range(4 if corrupt else 3):
        name = f"im{i}.png"
        if i < 3:
            cv2.imwrite(str(root / "images" / name), rng.integers(150, 256, (90, 120, 3), dtype=np.uint8))
        else:
            (root / "images" / name).write_bytes(b"garbage")
        boxes = np.array([[10, 10, 40, 30]], np.float32) if i != 1 else np.zeros((0, 4), np.float32)
        records.append(ImageRecord(name, 120, 90, Detections.from_boxes(boxes, [0] * len(boxes)), i + 1))
    write_detection(DetectionSet(("cell",), records, root / "images"), root, Format.COCO, copy_images=False)
    return root


@pytest.mark.parametrize(("n", "rows", "cols"), [(1, 1, 1), (5, 2, 3), (16, 4, 4), (17, 4, 5)])
def test_grid_shape(n, rows, cols):
    assert grid_shape(n) == (rows, cols)


def test_preview_writes_a_png_of_the_grid_size(tmp_path):
    out = preview_grid(make_set(tmp_path / "set"), STEPS, n=5, out=tmp_path / "grid.png", seed=1, cell=64)
    image = cv2.imread(str(out))
    assert out == tmp_path / "grid.png" and image.shape == (2 * 64, 3 * 64, 3)
    assert not list(tmp_path.glob(".grid.*"))  # no temporary file left behind
    again = preview_grid(make_set(tmp_path / "set2"), STEPS, n=5, out=tmp_path / "again.png", seed=1, cell=64)
    assert np.array_equal(cv2.imread(str(again)), image)  # same seed, same grid


def test_preview_skips_unreadable_images(tmp_path, caplog):
    out = preview_grid(make_set(tmp_path / "set", corrupt=True), STEPS, n=6, out=tmp_path / "g.png", cell=32)
    assert cv2.imread(str(out)).shape == (2 * 32, 3 * 32, 3)
    assert "im3.png" in caplog.text


def test_preview_reports_recipe_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown op 'flip'"):
        preview_grid(make_set(tmp_path / "set"), [{"op": "flip"}], out=tmp_path / "g.png")
    with pytest.raises(DataError):
        preview_grid(tmp_path / "missing", STEPS, out=tmp_path / "g.png")


def test_draw_boxes_outlines_each_box():
    image = np.zeros((40, 40, 3), np.uint8)
    drawn = draw_boxes(image, Detections.from_boxes(np.array([[5, 5, 30, 25]], np.float32), [0]), ["cell"])
    assert drawn[5, 15].any() and drawn[24, 15].any() and not drawn[15, 15].any()
    assert not image.any()  # input untouched


def test_load_augment_steps_from_a_recipe_or_a_bare_list(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("model: retinanet_mbv2_slim\naugment:\n  - {op: random_flip, horizontal: 0.5}\n"
                      "  - op: online_crop_resize\n    crop: 1600\n")
    bare = tmp_path / "augment.yaml"
    bare.write_text("- op: random_flip\n")
    assert load_augment_steps(recipe) == [{"op": "random_flip", "horizontal": 0.5},
                                          {"op": "online_crop_resize", "crop": 1600}]
    assert load_augment_steps(bare) == [{"op": "random_flip"}]
    nested = tmp_path / "train.yaml"  # the layout of configs/: augment: {steps: [...], negatives: ...}
    nested.write_text("augment:\n  steps:\n    - {op: random_flip}\n  negatives: null\n")
    assert load_augment_steps(nested) == [{"op": "random_flip"}]


def test_cli_preview_takes_a_shipped_recipe_by_name(tmp_path):
    from tests.helpers import run_cli

    code, stdout, stderr = run_cli(["data", "preview", str(make_set(tmp_path / "set")), "--recipe",
                                    "s0_cervical_retinanet", "--n", "2", "--out", str(tmp_path / "g.png")])
    assert code == 0, stderr
    assert cv2.imread(str(tmp_path / "g.png")) is not None and "wrote" in stdout


def test_preview_takes_negatives_from_a_folder(tmp_path):
    folder = tmp_path / "negatives"
    folder.mkdir()
    cv2.imwrite(str(folder / "neg.png"), np.full((70, 80, 3), (0, 0, 255), np.uint8))  # pure red (BGR)
    steps = [{"op": "replace_background", "p": 1.0, "stain_norm": None}]
    out = preview_grid(make_set(tmp_path / "set"), steps, n=1, out=tmp_path / "g.png", cell=80, seed=2,
                       negatives=folder)
    grid = cv2.imread(str(out))
    assert (np.abs(grid.astype(int) - (0, 0, 255)).max(axis=2) == 0).mean() > 0.5  # drawn on the negative
    with pytest.raises(DataError, match="no negative images"):
        preview_grid(make_set(tmp_path / "set2"), steps, n=1, out=tmp_path / "g.png", negatives=tmp_path / "none")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("model: x\n", "no 'augment' list"), ("augment: random_flip\n", "must be a list"),
     ("- random_flip\n", "must be a list"), ("augment: {steps: flip}\n", "must be a list"), ("augment: [\n", "not valid YAML")],
)
def test_load_augment_steps_errors(tmp_path, text, expected):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_augment_steps(path)
    assert info.value.path == str(path)


def test_preview_runs_without_torch(tmp_path):
    """`data preview` is a base-install command: nothing on its path may import torch."""
    root = make_set(tmp_path / "set")
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision'): raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from pathlib import Path\n"
        "from leanvision.data.preview import preview_grid\n"
        f"preview_grid(Path({str(root)!r}), {STEPS!r}, n=2, out=Path({str(tmp_path / 'g.png')!r}), cell=32)\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
