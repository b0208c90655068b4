"""`leanvision predict` on a real exported model (the tiny torchvision RetinaNet, ONNX):
the pipeline with the runtime's DetectionPredictor equals tile-by-tile calls, the
single-image form, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from leanvision.cli import main as cli_main
from leanvision.largeimage.pipeline import PipelineOptions, TilingOptions, run_pipeline
from leanvision.largeimage.pipeline.tasks import merge_tiles
from leanvision.largeimage.readers import open_reader
from tests.largeimage.fakes import blob_image, random_boxes, write_image

INPUT_HW = (224, 200)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from tests.runtime.tiny_retinanet import build_retinanet, export_model_dir

    return export_model_dir(build_retinanet(), INPUT_HW, tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("slides")
    for i, (size, suffix) in enumerate([((900, 700), "jpg"), ((640, 500), "tif")]):
        write_image(root / f"slide{i}.{suffix}", blob_image(size, random_boxes(size, 15, seed=i, side=(20, 60)), seed=i))
    return root


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        cli_main.main(args)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def test_pipeline_with_the_runtime_predictor_equals_tile_by_tile_calls(model_dir, slides):
    from leanvision.runtime import load_predictor

    tiling = TilingOptions(window=400, overlap=40)
    predictor = load_predictor(model_dir, backend="onnxruntime")
    summary = run_pipeline(predictor, [slides], options=PipelineOptions(tiling=tiling, batch=3, readers=2))
    assert summary.images == 2 and sum(len(r.detections) for r in summary.results.values()) > 0
    for path, result in summary.results.items():
        with open_reader(path) as reader:
            tiles = tiling.plan(reader.size, (INPUT_HW[1], INPUT_HW[0]))
            per_tile = [predictor([reader.read(*t.window, t.out_w, t.out_h)])[0] for t in tiles]
        expected = merge_tiles(per_tile, tiles, (result.width, result.height), PipelineOptions().merge)
        # Batched and single-image runs of the same model agree to float rounding.
        order = lambda d: np.lexsort(np.c_[np.round(d.boxes, 2), d.labels].T[::-1])  # noqa: E731
        assert len(result.detections) == len(expected)
        np.testing.assert_allclose(result.detections.boxes[order(result.detections)], expected.boxes[order(expected)], atol=1e-2)
        np.testing.assert_allclose(result.detections.scores[order(result.detections)], expected.scores[order(expected)], atol=1e-4)


def test_predict_writes_results_and_the_single_image_form_agrees(model_dir, slides, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(["predict", str(model_dir), str(slides), "--out", str(out), "--window", "400",
                             "--overlap", "40", "--readers", "1", "--batch", "2", "--preview"], capsys)
    assert code == 0, err
    assert "2 images (0 failed)" in stdout
    assert json.loads((out / "summary.json").read_text())["images"] == 2
    assert {p.name for p in out.iterdir()} == {f"slide{i}.{s}" for i in (0, 1) for s in ("json", "csv", "png")} | {"summary.json"}

    single = tmp_path / "r.json"
    code, stdout, err = run(["predict", str(model_dir), str(slides / "slide1.tif"), "--out", str(single),
                             "--window", "400", "--overlap", "40"], capsys)
    assert code == 0, err
    assert json.loads(single.read_text()) == json.loads((out / "slide1.json").read_text())


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (lambda m, s, t: [str(t / "nope"), str(s), "--out", str(t / "o")], "model directory not found"),
        (lambda m, s, t: [str(t), str(s), "--out", str(t / "o")], "model card not found"),
        (lambda m, s, t: [str(m), str(t / "missing.jpg"), "--out", str(t / "o")], "input not found"),
        (lambda m, s, t: [str(m), str(s), "--out", str(t / "r.json")], "takes exactly one image"),
        (lambda m, s, t: [str(m), str(s), "--out", str(t / "o"), "--fit-grid", "2by2"], "--fit-grid takes ROWSxCOLS"),
        (lambda m, s, t: [str(m), str(s), "--out", str(t / "o"), "--reader", "gimp"], "'gimp' is not one of 'simplejpeg'"),
    ],
)
def test_bad_input_is_one_line_with_exit_code_2(model_dir, slides, tmp_path, capsys, make_args, expected):
    code, _, err = run(["predict", *make_args(model_dir, slides, tmp_path)], capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("leanvision: error: ") and expected in err
