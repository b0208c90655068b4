"""INT8 counting through `quantize`: candidates scored by MAE, the budget in objects per
image, calibration chosen by feature similarity (S3's one look-alike image)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from leanvision.compression.quantize import QuantizeOptions, quantize
from leanvision.core import ModelCard, Precision, Task
from leanvision.data.formats import read_counting
from leanvision.evaluation.counting import counting_metrics
from leanvision.runtime import CountPredictor, load_predictor
from tests.helpers import run_cli


def _independent_mae(model_dir, data, backend: str) -> float:
    """MAE of a model directory through the runtime's own predictor and `counting_metrics`."""
    dataset = read_counting(data)
    with load_predictor(model_dir, backend=backend) as predictor:
        assert isinstance(predictor, CountPredictor)
        counts = [m.count for m in predictor([str(dataset.image_root / r.file_name) for r in dataset.images])]
    return counting_metrics(counts, [len(r.points) for r in dataset.images]).mae


@pytest.fixture(scope="module")
def ir_model(count_checkpoint, tmp_path_factory):
    from leanvision.export import export_model

    return export_model(count_checkpoint, format="openvino", out=tmp_path_factory.mktemp("q_exports") / "ir")


@pytest.fixture(scope="module")
def similar_run(ir_model, blob_data, tmp_path_factory):
    options = QuantizeOptions.from_dict({"calibration": {"size": 1, "select": "similar"},
                                         "budget": {"max_drop": 0.25, "sensitivity_images": 1},
                                         "bench": {"seconds": 0.2, "rounds": 1}})
    out = tmp_path_factory.mktemp("q_count") / "int8"
    return quantize(ir_model.out, calib=blob_data / "train", val=blob_data / "val", backend="openvino", out=out,
                    options=options)


@pytest.mark.slow
def test_counting_models_are_scored_by_mae(similar_run, ir_model, blob_data):
    assert similar_run.metric.key == "mae" and not similar_run.metric.higher_is_better
    assert similar_run.fp32_score == pytest.approx(_independent_mae(ir_model.out, blob_data / "val", "openvino"),
                                                   rel=1e-4)
    assert similar_run.score == pytest.approx(_independent_mae(similar_run.out, blob_data / "val", "openvino"),
                                              rel=1e-4)
    assert similar_run.drop == pytest.approx(similar_run.score - similar_run.fp32_score)


@pytest.mark.slow
def test_the_budget_is_in_objects_per_image(similar_run):
    assert similar_run.budget_reached == (similar_run.drop <= 0.25)
    report = similar_run.report
    assert report["metric"]["unit"] == "objects per image" and report["budget"]["budget"] == 0.25
    assert [set(m) >= {"mae", "drop"} for m in report["models"]] == [True, True, True]
    assert report["validation"]["images"] == 3 and report["validation"]["objects"] == 35  # 25 + 0 + 10 heads
    markdown = (similar_run.out / "quant_report.md").read_text()
    assert "| model | MAE | drop (objects per image) |" in markdown


@pytest.mark.slow
def test_similar_calibration_picks_the_image_nearest_the_feature_centroid(similar_run, ir_model, blob_data):
    """The one calibration image is the train image whose pooled front-end features are
    nearest the mean of all six (the centroid computed here by hand)."""
    from leanvision.compression.quantize.api import FEATURES
    from leanvision.compression.quantize.groups import feature_source
    from leanvision.compression.quantize.openvino_nncf import OpenVinoQuantizer
    from leanvision.runtime.preprocess import prepare_images, read_image

    adapter = OpenVinoQuantizer()
    model = adapter.read(ir_model.out)
    source = feature_source(adapter.graph_order(model), ir_model.card.layer_groups)
    assert source.startswith("backbone")
    run = adapter.runner(adapter.with_output(model, source))
    files = [blob_data / "train" / "images" / f"crowd_{i:02d}.png" for i in range(6)]
    rows = []
    for file in files:
        batch = prepare_images([read_image(str(file), 0)], ir_model.card.input).batch
        rows.append(run({adapter.input_name(model): batch})[FEATURES][0].mean(axis=(1, 2)))
    rows = np.stack(rows)
    nearest = int(np.argmin(np.linalg.norm(rows - rows.mean(0), axis=1)))
    calibration = similar_run.report["calibration"]
    assert calibration["selection"] == "similar" and calibration["chosen"] == [str(files[nearest])]


@pytest.mark.slow
def test_cli_quantizes_a_counting_model_on_onnxruntime(onnx_model, blob_data, tmp_path):
    out = tmp_path / "int8"
    code, stdout, stderr = run_cli([
        "quantize", str(onnx_model.out), "--calib", str(blob_data / "train"), "--val", str(blob_data / "val"),
        "--backend", "onnxruntime", "--out", str(out), "--calib-size", "2", "--bench-seconds", "0.1",
        "--json", str(tmp_path / "report.json")])
    assert code == 0, stderr
    assert "MAE: FP32" in stdout and "objects per image" in stdout
    card = ModelCard.load(out)
    assert card.task is Task.COUNT and card.precision is Precision.INT8 and card.output_stride == 8
    assert "quant_mae" in card.metrics and "quant_fp32_mae" in card.metrics
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["models"][-1]["mae"] == pytest.approx(_independent_mae(out, blob_data / "val", "onnxruntime"),
                                                        rel=1e-4)


def test_unlabelled_validation_images_are_a_clear_error(onnx_model, blob_data, tmp_path):
    from leanvision.core import DataError

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.png").write_bytes((blob_data / "val" / "images" / "crowd_00.png").read_bytes())
    with pytest.raises(DataError, match="needs point labels"):
        quantize(onnx_model.out, calib=blob_data / "train", val=plain, backend="onnxruntime", out=tmp_path / "o",
                 options=QuantizeOptions.from_dict({"calibration": {"size": 1}, "bench": {"seconds": 0}}))
