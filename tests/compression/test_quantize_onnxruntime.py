"""`quantize` on ONNX Runtime (static QDQ): INT8 within tolerance, FPN kept FP32, sweep."""

from __future__ import annotations

import onnx
import pytest

from leanvision.compression.quantize import QuantizeOptions, quantize
from leanvision.compression.quantize.onnxruntime_qdq import OnnxRuntimeQuantizer
from leanvision.core import Precision

pytestmark = [pytest.mark.xdist_group("compression_model"), pytest.mark.slow]
TOLERANCE_POINTS = 10.0  # see test_quantize_openvino


@pytest.fixture(scope="module")
def ort_run(tiny_onnx, tiny_data, tmp_path_factory):
    options = QuantizeOptions.from_dict({"budget": {"keep_fp32": ["fpn"], "sensitivity": False},
                                         "calibration": {"size": 8, "sweep": [1, 4], "select": "diverse"},
                                         "bench": {"seconds": 0.2, "rounds": 1}, "advanced": {"ort_method": "entropy"}})
    out = tmp_path_factory.mktemp("ort") / "int8"
    return quantize(tiny_onnx, calib=tiny_data, val=tiny_data, backend="onnxruntime", out=out, options=options)


def test_int8_qdq_is_within_tolerance_of_fp32(ort_run):
    assert 100 * (ort_run.fp32_score - ort_run.int8_all_score) <= TOLERANCE_POINTS
    assert ort_run.drop <= TOLERANCE_POINTS
    assert {p.name for p in ort_run.files} >= {"model.onnx", "model_card.json", "quant_report.html"}
    assert ort_run.card.precision is Precision.MIXED


def test_keep_fp32_fpn_leaves_exactly_the_fpn_convolutions_unquantized(ort_run):
    adapter = OnnxRuntimeQuantizer()
    model = onnx.load(str(ort_run.out / "model.onnx"))
    quantized = adapter.quantized_nodes(model)
    layers = [n for n in adapter.nodes(model, ort_run.card.layer_groups) if n.is_layer]
    assert {n.name for n in layers if n.node not in quantized} == {n.name for n in layers if n.group == "fpn"}
    # FPN convolutions read float tensors even where ONNX Runtime shared a Q/DQ pair (C3, C4).
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.name.startswith("fpn.") and node.op_type == "Conv":
            assert producers.get(node.input[0]) != "DequantizeLinear", node.name


def test_the_model_outputs_are_not_rounded_to_8_bits(ort_run):
    model = onnx.load(str(ort_run.out / "model.onnx"))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert [producers[o.name] for o in model.graph.output] == ["Concat", "Concat"]


def test_the_calibration_sweep_reports_each_size(ort_run):
    sweep = ort_run.report["sweep"]
    assert [row["images"] for row in sweep] == [1, 4]
    assert all(row["subset_size"] == row["images"] and 0 <= row["map50"] <= 1 for row in sweep)
    assert ort_run.report["calibration"]["ort_method"] == "entropy"
