"""`quantize` on OpenVINO (NNCF): accuracy budget on the damaged model, FPN kept FP32, reports.

Tolerance: INT8 mAP@0.5 within 10 points of FP32 on the tiny model's 8 boxes (one missed
box is ~12 points of recall; measured drops: 0 to 2.6 points).
"""

from __future__ import annotations

import json
import re

import pytest

from leanvision.compression.quantize import QuantizeOptions, quantize
from leanvision.compression.quantize.openvino_nncf import OpenVinoQuantizer
from leanvision.core import ModelCard, Precision
from leanvision.data.formats import read_detection
from leanvision.evaluation.detection import evaluate_detections
from leanvision.runtime import load_predictor
from leanvision.runtime.hardware import detect_cpu
from tests.compression.tiny import DAMAGED_LAYER

pytestmark = [pytest.mark.xdist_group("compression_model"), pytest.mark.slow]
TOLERANCE_POINTS = 10.0
# The budget of the search test: below one box of the 8 (~12 points) and above the INT8 noise
# of the undamaged layers. With 0.5 points, how many layers the search had to keep depended on
# the CPU's INT8 kernels and on float rounding in training: 1-4 on AVX2, ~70 of 110 on AMX, and
# all 110 on an AVX-512 VNNI EPYC once the batched loss trained a marginally different tiny
# model (the damaged layer alone left a 5.8-point drop there).
BUDGET_POINTS = 8.0
FAST = {"bench": {"seconds": 0.2, "rounds": 1}}


@pytest.fixture(scope="module")
def budget_run(damaged_ir, tiny_data, tmp_path_factory):
    """The damaged model quantized under a BUDGET_POINTS budget."""
    options = QuantizeOptions.from_dict({**FAST, "budget": {"max_drop": BUDGET_POINTS, "sensitivity_images": 2},
                                         "calibration": {"size": 8}})
    out = tmp_path_factory.mktemp("ov_budget") / "int8"
    return quantize(damaged_ir, calib=tiny_data, val=tiny_data, backend="openvino", out=out, options=options)


@pytest.fixture(scope="module")
def fpn_run(tiny_ir, tiny_data, tmp_path_factory):
    """The trained model with --keep-fp32 fpn, calibrated on the 6 images most like the rest."""
    options = QuantizeOptions.from_dict({**FAST, "budget": {"keep_fp32": ["fpn"], "sensitivity": False},
                                         "calibration": {"size": 6, "select": "similar"}})
    out = tmp_path_factory.mktemp("ov_fpn") / "int8"
    return quantize(tiny_ir, calib=tiny_data, val=tiny_data, backend="openvino", out=out, options=options)


def test_the_damaged_layer_ranks_first(budget_run):
    ranking = budget_run.sensitivity.layers
    assert ranking[0].layer == DAMAGED_LAYER
    assert ranking[0].gain > 5 * ranking[1].gain  # by far


def test_the_budget_search_meets_the_budget_it_was_given(budget_run):
    assert budget_run.int8_all_score < budget_run.fp32_score - 0.1  # the damage costs > 10 points
    assert budget_run.budget_reached and budget_run.drop <= BUDGET_POINTS
    assert DAMAGED_LAYER in budget_run.kept_layers
    # It did not give up and keep everything. How many layers meet the budget depends on the
    # CPU's INT8 kernels (AMX accumulates and requantises differently), so only "not all"
    # holds on every x86 CPU.
    path = detect_cpu().summary()
    assert len(budget_run.kept_layers) < len(budget_run.sensitivity.layers), path


def test_the_saved_model_scores_what_the_search_measured(budget_run, tiny_data):
    """Independent check: the runtime predictor on the saved directory, pycocotools."""
    dataset = read_detection(tiny_data)
    with load_predictor(budget_run.out, backend="openvino") as predictor:
        predictions = predictor([str(dataset.image_path(r)) for r in dataset.images])
    metrics = evaluate_detections([r.targets for r in dataset.images], predictions,
                                  image_sizes=[(r.width, r.height) for r in dataset.images], class_names=dataset.classes)
    assert metrics.map50 == pytest.approx(budget_run.score, abs=1e-6)
    assert budget_run.fp32_score - metrics.map50 <= BUDGET_POINTS / 100


def test_the_saved_model_keeps_exactly_the_chosen_layers_fp32(budget_run):
    adapter = OpenVinoQuantizer()
    model = adapter.read(budget_run.out)
    quantized = adapter.quantized_nodes(model)
    layers = [n for n in adapter.nodes(model, budget_run.card.layer_groups) if n.is_layer]
    assert {n.name for n in layers if n.node not in quantized} == set(budget_run.kept_layers)


def test_card_and_reports(budget_run):
    card = ModelCard.load(budget_run.out)
    assert card.precision is Precision.MIXED
    assert json.loads(card.provenance["quantization_fp32_layers"]) == list(budget_run.kept_layers)
    assert card.metrics["quant_drop"] == pytest.approx(budget_run.drop)
    assert card.metrics["quant_fp32_map50"] == pytest.approx(budget_run.fp32_score)
    names = {p.name for p in budget_run.files}
    assert {"model.xml", "model.bin", "model_card.json", "quant_report.json", "quant_report.md",
            "quant_report.html"} <= names
    html = (budget_run.out / "quant_report.html").read_text()
    assert re.search(r"<img alt='per-layer sensitivity' src='data:image/png;base64,[A-Za-z0-9+/=]{1000,}'>", html)
    assert DAMAGED_LAYER in html
    report = json.loads((budget_run.out / "quant_report.json").read_text())
    assert report["budget"]["reached"] and report["cpu"]["int8_path"]
    assert [m["label"] for m in report["models"]] == ["FP32", "INT8 (all layers)", "saved"]
    assert all(m["images_per_s"] > 0 for m in report["models"])  # measured, not assumed
    assert report["calibration"]["subset_size"] == report["calibration"]["images"] == 8


def test_int8_is_within_tolerance_of_fp32(fpn_run):
    assert 100 * (fpn_run.fp32_score - fpn_run.int8_all_score) <= TOLERANCE_POINTS
    assert fpn_run.drop <= TOLERANCE_POINTS


def test_keep_fp32_fpn_leaves_exactly_the_fpn_convolutions_unquantized(fpn_run):
    adapter = OpenVinoQuantizer()
    model = adapter.read(fpn_run.out)
    quantized = adapter.quantized_nodes(model)
    layers = [n for n in adapter.nodes(model, fpn_run.card.layer_groups) if n.is_layer]
    unquantized = {n.name for n in layers if n.node not in quantized}
    assert unquantized == {n.name for n in layers if n.group == "fpn"}
    assert len(unquantized) == 8  # 3 lateral, 3 output, P6, P7
    assert fpn_run.card.precision is Precision.MIXED and fpn_run.kept_layers == tuple(sorted(unquantized, key=[n.name for n in layers].index))
    # The FPN's additions and resizes stay float too (S0's "FPN in FP32").
    assert "fpn/Add" in fpn_run.report["fp32_other_nodes"]


def test_similar_selection_and_no_sensitivity(fpn_run):
    calibration = fpn_run.report["calibration"]
    assert calibration["selection"] == "similar" and len(set(calibration["chosen"])) == 6
    assert fpn_run.sensitivity is None and fpn_run.report["sensitivity"] is None
    assert not (fpn_run.out / "quant_sensitivity.png").exists()
