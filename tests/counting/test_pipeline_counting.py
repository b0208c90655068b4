"""Large-image counting through the pipeline: the stitched count equals the tiles' counts
computed by hand (predictor tile by tile + DenseStitcher), S3's 2x2 fit grid and 4-tile
batches, and `leanvision predict` writing counts, density maps and heat maps."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest

from leanvision.core import DensityMap, InputSpec, ModelCard, OutputSpec, Task
from leanvision.largeimage import PipelineOptions, TilingOptions, run_pipeline
from leanvision.largeimage.grid import plan_fit_grid, plan_grid
from leanvision.largeimage.merge import DenseKind, DenseStitcher
from leanvision.largeimage.pipeline.outputs import CountResult
from leanvision.largeimage.readers import open_reader
from leanvision.runtime import load_predictor
from tests.counting.conftest import run_cli

LOCAL = {"readers": 1, "start_method": "spawn"}


def _tile_maps(predictor, path, tiles) -> list[DensityMap]:
    """The predictor run on each tile alone, its pixels read as the pipeline reads them."""
    with open_reader(path) as reader:
        return [predictor([reader.read(*t.window, t.out_w, t.out_h)])[0] for t in tiles]


@pytest.fixture(scope="module")
def predictor(onnx_model):
    with load_predictor(onnx_model.out, backend="onnxruntime") as loaded:
        yield loaded


@pytest.mark.parametrize("batch", [1, 4])
def test_fit_grid_count_is_the_sum_of_the_four_tiles_counts(predictor, large_crowd, batch):
    path, _ = large_crowd
    options = PipelineOptions(tiling=TilingOptions(fit_grid=(2, 2)), batch=batch, **LOCAL)
    summary = run_pipeline(predictor, [path], options=options)
    result = summary.results[path]
    tiles = plan_fit_grid(300, 220, rows=2, cols=2, out_size=(96, 64))
    by_hand = sum(m.count for m in _tile_maps(predictor, path, tiles))
    assert isinstance(result, CountResult) and result.tiles == 4 and summary.tiles == 4
    assert result.count == pytest.approx(by_hand, rel=1e-5)
    assert abs(result.count) > 1.0


def test_overlapping_tiles_are_averaged_as_the_dense_stitcher_does_by_hand(predictor, large_crowd):
    path, _ = large_crowd
    options = PipelineOptions(tiling=TilingOptions(overlap=32), batch=2, **LOCAL)
    result = run_pipeline(predictor, [path], options=options).results[path]
    tiles = plan_grid(300, 220, window=(96, 64), out_size=(96, 64), overlap=32)
    stitcher = DenseStitcher(300, 220, stride=8, kind=DenseKind.DENSITY)
    for tile, tile_map in zip(tiles, _tile_maps(predictor, path, tiles), strict=True):
        stitcher.add(tile, tile_map.density)
    expected = stitcher.result()[0]
    assert result.tiles == len(tiles) > 4 and result.density.stride == (8.0, 8.0)
    np.testing.assert_allclose(result.density.density, expected, rtol=1e-5, atol=1e-7)
    assert result.count == pytest.approx(float(expected.sum(dtype=np.float64)), rel=1e-5)


class ConstantDensity:
    """A `Predictor` whose map is `value` in every cell of its 64 x 96 input (stride 8)."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.card = ModelCard(name="constant", task=Task.COUNT, class_names=("object",),
                              input=InputSpec(height=64, width=96), outputs=(OutputSpec("density", "N,1,H,W"),),
                              output_stride=8)

    def __call__(self, images: Sequence[np.ndarray]) -> list[DensityMap]:
        return [DensityMap(np.full((8, 12), self.value, np.float32), 8) for _ in images]


def test_constant_density_counts_by_hand(large_crowd):
    """0.5 per cell: a 2x2 fit grid counts 4 x 96 cells x 0.5 = 192; an overlapping grid
    averages to 0.5 on each of the ceil(220/8) x ceil(300/8) = 28 x 38 image cells: 532."""
    path, _ = large_crowd
    fit = run_pipeline(ConstantDensity(0.5), [path], options=PipelineOptions(
        tiling=TilingOptions(fit_grid=(2, 2)), **LOCAL)).results[path]
    assert fit.count == pytest.approx(192.0, rel=1e-6)
    overlapping = run_pipeline(ConstantDensity(0.5), [path], options=PipelineOptions(
        tiling=TilingOptions(overlap=24), **LOCAL)).results[path]
    assert overlapping.density.shape == (28, 38) and overlapping.count == pytest.approx(532.0, rel=1e-6)


def test_predict_command_writes_counts_density_maps_and_heat_maps(onnx_model, large_crowd, tmp_path):
    path, _ = large_crowd
    out = tmp_path / "counts"
    code, stdout, stderr = run_cli(["predict", str(onnx_model.out), str(path.parent), "--out", str(out),
                                    "--fit-grid", "2x2", "--batch", "4", "--density", "--preview",
                                    "--readers", "1"])
    assert code == 0, stderr
    result = json.loads((out / "crowd_large.json").read_text())
    density = np.load(out / "crowd_large.npy")
    assert result["width"] == 300 and result["tiles"] == 4 and result["density"]["file"] == "crowd_large.npy"
    assert list(density.shape) == result["density"]["shape"]
    assert result["count"] == pytest.approx(float(density.sum(dtype=np.float64)), abs=1e-3)
    assert (out / "crowd_large.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "summary.json").read_text())["images"] == 1 and "1 image (0 failed)" in stdout


def test_predict_one_image_to_a_json_file(onnx_model, large_crowd, tmp_path):
    path, _ = large_crowd
    code, stdout, stderr = run_cli(["predict", str(onnx_model.out), str(path), "--out", str(tmp_path / "one.json"),
                                    "--fit-grid", "2x2", "--readers", "1"])
    assert code == 0, stderr
    result = json.loads((tmp_path / "one.json").read_text())
    assert "count " in stdout and result["density"]["file"] is None and result["tiles"] == 4
