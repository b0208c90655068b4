"""ONNX / OpenVINO export of the slim RetinaNet: files, card, node names and groups, parity."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from leanvision.core import CARD_FILENAME, ModelCard, ModelError, Precision
from leanvision.export import export_model
from leanvision.export.names import _scopes, group_of, unmatched
from leanvision.export.openvino import ir_operations, ir_weight_types
from leanvision.export.parity import TorchReference, check_parity, synthetic_images
from leanvision.runtime import Backend
from tests.export.slim import CLASSES, INPUT_HW

pytestmark = pytest.mark.slow  # every test here uses a ~20-40 s export fixture

CONV_OPS = {"Convolution", "GroupConvolution"}


def conv_calls_per_part(model: nn.Module, input_hw) -> Counter:
    """How many times a Conv2d of each part runs in one forward (the shared head: once per level)."""
    calls: Counter = Counter()

    def counter(part: str):
        return lambda *_: calls.update([part])

    hooks = [
        module.register_forward_hook(counter(name.split(".")[0]))
        for name, module in model.named_modules() if isinstance(module, nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, *input_hw))
    for hook in hooks:
        hook.remove()
    return calls


def test_onnx_export_writes_the_model_card_and_parity(onnx_export, run_dir):
    out = onnx_export.out
    assert sorted(p.name for p in onnx_export.files) == ["model.onnx", CARD_FILENAME, "parity.json"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
    assert set(onnx_export.timings) == {"load", "export", "parity", "total"}
    graph = onnx.load(str(out / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == [3, *INPUT_HW]
    saved = json.loads((out / "parity.json").read_text())
    assert saved["passed"] and saved["max_abs_diff"] == onnx_export.parity.max_abs_diff


def test_card_round_trips_and_carries_anchors_and_provenance(onnx_export, slim, run_dir):
    card = ModelCard.load(onnx_export.out)
    assert card == onnx_export.card
    assert card.class_names == CLASSES and (card.input.height, card.input.width) == INPUT_HW
    assert card.anchors.feature_sizes == ((32, 32), (16, 16), (8, 8), (4, 4), (2, 2))
    assert card.anchors.feature_sizes == slim.feature_sizes(INPUT_HW)
    assert [o.name for o in card.outputs] == ["cls_logits", "bbox_regression"]
    assert card.box_coder is not None and card.precision is Precision.FP32
    assert card.metrics["val_map50"] == 0.5  # carried from training
    assert card.metrics["parity_detection_agreement"] == 1.0 and card.metrics["parity_detections"] > 0
    digest = hashlib.sha256((run_dir / "best.pt").read_bytes()).hexdigest()
    assert card.provenance["checkpoint_sha256"] == digest
    assert card.provenance["checkpoint"] == str((run_dir / "best.pt").resolve())
    assert card.provenance["torch_version"] == importlib.metadata.version("torch")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", card.provenance["exported_utc"])
    assert {"leanvision_version", "onnx_version", "openvino_version"} <= set(card.provenance)


def test_parity_covers_both_engines_at_batch_1_and_3(onnx_export):
    report = onnx_export.parity
    assert report.passed and report.images == 3 and report.source == "synthetic"
    assert [(r.backend, r.batch) for r in report.runs] == [
        ("onnxruntime", 1), ("onnxruntime", 3), ("openvino", 1), ("openvino", 3)]
    for run in report.runs:
        assert run.torch_detections == run.runtime_detections == run.matched_torch > 50
        assert max(run.max_abs_diff.values()) < 1e-4


def test_parity_fails_for_a_model_that_is_not_the_exported_one(onnx_export, slim):
    """The check can fail: raw outputs 0.05 off are caught even when detections still agree."""
    images = synthetic_images(2, INPUT_HW)

    @torch.no_grad()
    def raw(batch):
        logits, deltas = slim(torch.from_numpy(batch))
        return {"cls_logits": logits.numpy() + 0.05, "bbox_regression": deltas.numpy()}

    def detect(batch, content=None):
        return slim.detect(torch.from_numpy(batch), image_sizes=content)

    report = check_parity(onnx_export.out, TorchReference(raw, detect, "detect"), images,
                          backends=(Backend.ONNXRUNTIME,), source="synthetic")
    assert not report.passed and report.detection_agreement == 1.0
    assert report.max_abs_diff == pytest.approx(0.05, abs=1e-3)


def test_onnx_node_names_are_module_paths_and_groups_partition_the_convs(onnx_export, slim):
    graph = onnx.load(str(onnx_export.out / "model.onnx")).graph
    groups = onnx_export.card.layer_groups
    assert set(groups) == {"backbone", "fpn", "head"}
    names = [n.name for n in graph.node]
    assert len(set(names)) == len(names)
    assert "backbone.body.0.0/Conv" in names and "head.classification_head.conv.0.0/Conv_4" in names
    convs = [n for n in graph.node if n.op_type == "Conv"]
    for node in convs:  # the part from the exporter's own metadata, independent of the names
        assert group_of(node.name, groups) == [_scopes(node)[1]], node.name
    found = Counter(group_of(n.name, groups)[0] for n in convs)
    assert found == conv_calls_per_part(slim, INPUT_HW)


def test_ir_friendly_names_keep_the_onnx_names_and_groups(cli_ir_export, slim):
    out, _ = cli_ir_export
    card = ModelCard.load(out)
    convs = [name for kind, name in ir_operations(out / "model.xml") if kind in CONV_OPS]
    assert unmatched(convs, card.layer_groups) == []
    assert all(len(group_of(name, card.layer_groups)) == 1 for name in convs)
    assert Counter(group_of(n, card.layer_groups)[0] for n in convs) == conv_calls_per_part(slim, (192, 256))
    # BatchNorm folded into the convolutions gives them biases: OpenVINO splits Conv + Add.
    assert any(name.endswith("/WithoutBiases") for name in convs)
    assert "backbone.body.0.0/Conv/WithoutBiases" in convs


def test_ir_weights_stay_fp32_and_batch_stays_dynamic(cli_ir_export):
    import openvino as ov

    out, _ = cli_ir_export
    assert sorted(p.name for p in out.iterdir()) == sorted(["model.bin", "model.xml", CARD_FILENAME, "parity.json"])
    assert ir_weight_types(out / "model.xml") == {"f32"}
    model = ov.Core().read_model(str(out / "model.xml"))
    assert model.input(0).get_partial_shape()[0].is_dynamic
    assert [d.get_length() for d in model.input(0).get_partial_shape()[1:]] == [3, 192, 256]


def test_ir_export_at_another_input_size_measures_its_feature_sizes(cli_ir_export, slim, parity_dir):
    out, _ = cli_ir_export
    card = ModelCard.load(out)
    assert (card.input.height, card.input.width) == (192, 256)
    assert card.anchors.feature_sizes == slim.feature_sizes((192, 256)) == ((24, 32), (12, 16), (6, 8), (3, 4), (2, 2))
    parity = json.loads((out / "parity.json").read_text())
    assert parity["source"] == str(parity_dir) and parity["images"] == 3  # broken.jpg skipped
    assert [(r["backend"], r["batch"]) for r in parity["runs"]] == [("openvino", 1), ("openvino", 3)]
    assert parity["passed"] and parity["detections"] > 0


def test_export_replaces_a_previous_export_whole_and_keeps_it_when_parity_fails(
    onnx_export, run_dir, tmp_path, monkeypatch
):
    import shutil

    import leanvision.export.onnx as onnx_module
    from leanvision.export import ParityTolerance

    out = tmp_path / "model"
    shutil.copytree(onnx_export.out, out)
    (out / "model.xml").write_text("stale")  # from an older export in another format
    before = (out / "model.onnx").read_bytes()

    def reuse(module, input_hw, path, **kwargs):  # the real file, without a second 20 s export
        shutil.copy(onnx_export.out / "model.onnx", path)
        return onnx.load(str(path))

    monkeypatch.setattr(onnx_module, "export_onnx", reuse)
    strict = ParityTolerance(raw_rtol=0.0, raw_atol=0.0)
    with pytest.raises(ModelError, match=r"disagrees with torch: max \|diff\| .* detection agreement 1\.000") as info:
        export_model(run_dir, format="onnx", out=out, tolerance=strict)
    assert "\n" not in str(info.value)
    assert (out / "model.xml").read_text() == "stale" and (out / "model.onnx").read_bytes() == before
    result = export_model(run_dir, format="onnx", out=out)
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", CARD_FILENAME, "parity.json"]
    assert result.parity.passed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_synthetic_parity_images_are_deterministic():
    a, b = synthetic_images(2, (64, 80)), synthetic_images(2, (64, 80))
    assert all(x.shape == (64, 80, 3) and x.dtype == np.uint8 for x in a)
    assert all((x == y).all() for x, y in zip(a, b, strict=True)) and not (a[0] == a[1]).all()
