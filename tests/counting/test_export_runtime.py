"""csrnet_mbv2 exported with its card, parity on ONNX Runtime and OpenVINO, and the torch-free
`CountPredictor` that `load_predictor` picks for a counting card."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from leanvision.core import ConfigError, DensityMap, ModelCard, ModelError, ResizeMode, Task
from leanvision.core.letterbox import fit
from leanvision.export import export_model
from leanvision.export.names import unmatched
from leanvision.runtime import CountPredictor, DetectionPredictor, load_predictor
from leanvision.training.predict import fit_image
from tests.counting.conftest import MODEL_INPUT, blob_crowd


@pytest.fixture(scope="module")
def ir_model(count_checkpoint, tmp_path_factory):
    return export_model(count_checkpoint, format="openvino", out=tmp_path_factory.mktemp("exports") / "ir")


def test_the_card_carries_stride_density_output_and_parts(onnx_model):
    card = ModelCard.load(onnx_model.out)
    assert card.task is Task.COUNT and card.output_stride == 8 and card.anchors is None
    assert (card.input.height, card.input.width) == MODEL_INPUT
    assert [(o.name, o.layout) for o in card.outputs] == [("density", "N,1,H,W")]
    assert set(card.layer_groups) == {"backbone", "head"}
    import onnx

    nodes = [node.name for node in onnx.load(onnx_model.out / "model.onnx").graph.node]
    assert unmatched(nodes, card.layer_groups) == []  # every node belongs to the front or the back end


@pytest.mark.slow
def test_parity_compares_density_maps_and_counts_on_both_engines(onnx_model, ir_model):
    for result in (onnx_model, ir_model):
        parity = json.loads((result.out / "parity.json").read_text())
        assert parity["passed"] and parity["count_rel_diff"] < 1e-4 and "detection_agreement" not in parity
        assert all(run["max_abs_diff"]["density"] < 1e-4 for run in parity["runs"])
        assert result.card.metrics["parity_count_rel_diff"] == parity["count_rel_diff"]
    backends = [(r["backend"], r["batch"]) for r in json.loads((onnx_model.out / "parity.json").read_text())["runs"]]
    assert backends == [("onnxruntime", 1), ("onnxruntime", 3), ("openvino", 1), ("openvino", 3)]
    from leanvision.export.openvino import ir_operations

    convs = [name for kind, name in ir_operations(ir_model.out / "model.xml") if kind == "Convolution"]
    assert unmatched(convs, ir_model.card.layer_groups) == []


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_runtime_counts_what_torch_counts_in_image_pixels(onnx_model, lively, backend):
    """A 150 x 100 image stretched into the 96 x 64 input: the runtime's map has the torch
    model's cells, strides 8 x 150/96 and 8 x 100/64 image pixels, and the same count."""
    image, _ = blob_crowd(np.random.default_rng(3), 100, 150, 40)
    with load_predictor(onnx_model.out, backend=backend) as predictor:
        assert isinstance(predictor, CountPredictor)
        dm = predictor([image])[0]
    fitted, _ = fit_image(image, onnx_model.card.input)
    spec = onnx_model.card.input
    tensor = (torch.from_numpy(fitted).permute(2, 0, 1)[None].float() - torch.tensor(spec.mean).view(1, 3, 1, 1))
    expected = lively.predict(tensor / torch.tensor(spec.std).view(1, 3, 1, 1))[0]
    assert isinstance(dm, DensityMap) and dm.shape == expected.shape == (8, 12)
    assert dm.stride == pytest.approx((8 * 150 / 96, 8 * 100 / 64))
    assert abs(dm.count) > 1.0  # a lively model: the comparison is not of zeros
    assert dm.count == pytest.approx(expected.count, rel=1e-4)


def test_the_staged_path_equals_the_call(onnx_model):
    images = [blob_crowd(np.random.default_rng(s), 64 + 8 * s, 96, 10)[0] for s in range(3)]
    with load_predictor(onnx_model.out, backend="onnxruntime") as predictor:
        direct = predictor(images)
        prepared = predictor.preprocess(images)
        results = []
        predictor.submit(prepared, results.append)
        predictor.wait_all()
        staged = predictor.postprocess(results[0], prepared)
    assert [d.count for d in direct] == pytest.approx([s.count for s in staged], rel=1e-6)
    assert predictor([]) == []


def test_letterbox_drops_the_cells_over_padding(onnx_model, tmp_path):
    import shutil

    model_dir = tmp_path / "letterbox"
    shutil.copytree(onnx_model.out, model_dir)
    card = ModelCard.load(model_dir)
    card.replace(input=dataclasses.replace(card.input, resize=ResizeMode.LETTERBOX)).save(model_dir)
    image = np.full((30, 96, 3), 90, np.uint8)  # letterboxed: 96 x 30 content, 34 rows of padding
    with load_predictor(model_dir, backend="onnxruntime") as predictor:
        dm = predictor([image])[0]
        prepared = predictor.preprocess([image])
        full = predictor.engine.infer(prepared.batch)["density"][0, 0]
    assert fit((30, 96), MODEL_INPUT, ResizeMode.LETTERBOX).resized_hw == (30, 96)
    assert dm.shape == (4, 12) and full.shape == (8, 12)  # ceil(30 / 8) of the 8 rows cover the image
    assert dm.count == pytest.approx(float(full[:4].sum(dtype=np.float64)), rel=1e-6)


def test_a_counting_model_takes_no_detection_overrides_or_nms(onnx_model, count_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="apply to detectors"):
        load_predictor(onnx_model.out, overrides={"score_threshold": 0.5})
    with pytest.raises(ConfigError, match=r"--with-nms.*count model"):
        export_model(count_checkpoint, format="onnx", out=tmp_path / "x", with_nms=True, check=False)


def test_predictors_refuse_a_card_of_the_other_task(onnx_model):
    from leanvision.runtime import open_engine

    card = ModelCard.load(onnx_model.out)
    with open_engine(onnx_model.out / "model.onnx") as engine:
        with pytest.raises(ModelError, match="not a detector"):
            DetectionPredictor(engine, card)
        with pytest.raises(ModelError, match="no output_stride"):
            CountPredictor(engine, card.replace(output_stride=None))
