"""Graph surgery on real quantized models: restoring nodes to FP32 and the switchable graph.

Checked against the FP32 model itself: restoring every node of a quantized model must give
back the FP32 function exactly, and the switchable graph must equal the restored models.
"""

from __future__ import annotations

import numpy as np
import pytest

from leanvision.compression.quantize.onnxruntime_qdq import OnnxRuntimeQuantizer
from leanvision.compression.quantize.openvino_nncf import OpenVinoQuantizer
from leanvision.compression.quantize.options import AdvancedOptions
from leanvision.compression.quantize.sensitivity import output_error
from leanvision.core import ModelCard
from leanvision.data.images import list_images
from leanvision.runtime import load_predictor

pytestmark = pytest.mark.xdist_group("compression_model")
OUTPUTS = ["cls_logits", "bbox_regression"]
SWITCH = "lv_keep_fp32"


@pytest.fixture(scope="module", params=["openvino", "onnxruntime"])
def quantized(request, tiny_onnx, tiny_data):
    adapter = OpenVinoQuantizer() if request.param == "openvino" else OnnxRuntimeQuantizer()
    files = [str(p) for p in list_images(tiny_data / "images")][:6]
    batch = load_predictor(tiny_onnx, backend="onnxruntime").preprocess(files).batch
    fp32 = adapter.read(tiny_onnx)
    model = adapter.quantize(fp32, [b[None] for b in batch], images=len(batch), ignored=[],
                             options=AdvancedOptions(), reduce_range=True)
    nodes = adapter.nodes(fp32, ModelCard.load(tiny_onnx).layer_groups)
    run = lambda m, **extra: adapter.runner(m)({adapter.input_name(fp32): batch, **extra})  # noqa: E731
    return adapter, fp32, model, nodes, run


def test_every_layer_is_quantized(quantized):
    adapter, _, model, nodes, _ = quantized
    layers = [n.node for n in nodes if n.is_layer]
    assert len(layers) == 110  # the slim RetinaNet's convolution nodes (shared head: 5 each)
    assert set(layers) <= adapter.quantized_nodes(model)


def test_restoring_every_node_gives_back_fp32_exactly(quantized):
    adapter, fp32, model, nodes, run = quantized
    restored = adapter.restore_fp32(model, fp32, nodes)
    assert not adapter.quantized_nodes(restored)
    reference, got = run(fp32), run(restored)
    for name in OUTPUTS:
        np.testing.assert_allclose(got[name], reference[name], atol=1e-4)
    assert output_error(reference, run(model), OUTPUTS) > 1e-5  # and the INT8 model did differ


def test_restoring_layers_leaves_others_quantized(quantized):
    adapter, fp32, model, nodes, _ = quantized
    layers = [n for n in nodes if n.is_layer]
    restored = adapter.restore_fp32(model, fp32, layers[:3])
    still = adapter.quantized_nodes(restored)
    assert not {n.node for n in layers[:3]} & still
    assert {n.node for n in layers[3:]} <= still


def test_the_switchable_graph_emulates_int8_and_each_restore(quantized, request):
    from leanvision.runtime.hardware import detect_cpu

    cpu = detect_cpu()
    if request.node.callspec.params["quantized"] == "openvino" and not (cpu.vnni or cpu.amx):
        # Measured on an AMD EPYC (AVX2, 2026-12-04): the emulation's error was 34 % of the
        # quantization noise, and restoring 3 layers left 2.1x the error the emulation
        # predicted. OpenVINO's AVX2 INT8 kernels compute what the float emulation does not
        # model; known, not yet fixed: strict, so the day it holds this test says so.
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"OpenVINO INT8 on {cpu.int8_path}"))
    adapter, fp32, model, nodes, run = quantized
    layers = [n for n in nodes if n.is_layer]
    switchable = adapter.switchable(model, fp32, layers)
    off = run(switchable, **{SWITCH: np.zeros(len(layers), bool)})
    # INT8 emulated in float vs the integer kernels: the emulation's own error is a small
    # part of the quantization noise (measured: 2% on ONNX Runtime, 10% on OpenVINO).
    assert output_error(run(model), off, OUTPUTS) < 0.25 * output_error(run(fp32), run(model), OUTPUTS)
    mask = np.zeros(len(layers), bool)
    mask[[0, 40, 100]] = True
    one = run(switchable, **{SWITCH: mask})
    restored = run(adapter.restore_fp32(model, fp32, [layers[i] for i in (0, 40, 100)]))
    reference = run(fp32)
    # Same layers restored both ways: same error against FP32 (integer vs emulated aside).
    assert output_error(reference, one, OUTPUTS) == pytest.approx(output_error(reference, restored, OUTPUTS), rel=0.2)


def test_feature_source_is_c5_in_both_graphs(quantized, tiny_onnx):
    from leanvision.compression.quantize.groups import feature_source

    adapter, fp32, *_ = quantized
    groups = ModelCard.load(tiny_onnx).layer_groups
    assert feature_source(adapter.graph_order(fp32), groups) == "backbone.body.18.2/Clip"
