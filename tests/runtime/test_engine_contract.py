"""The engine contract template instantiated for a tiny torchvision RetinaNet."""

from __future__ import annotations

import numpy as np
import pytest

from leanvision.core import Detections, Precision
from leanvision.runtime import Backend, PrecisionHint
from tests.runtime.tiny_retinanet import synthetic_images, torchvision_detect
from tests.templates.engine_contract import (
    TOLERANCES,
    EngineCase,
    EngineContractTests,
    ModelVariant,
    agreement,
)

ORT, OV = Backend.ONNXRUNTIME, Backend.OPENVINO


class TestTinyRetinaNetEngines(EngineContractTests):
    CASES = (
        EngineCase("fp32_onnx", ORT),
        EngineCase("fp32_onnx", OV),
        EngineCase("fp32_ir", OV),
        EngineCase("fp32_ir", OV, PrecisionHint.BF16),
        EngineCase("int8_qdq", ORT),
        EngineCase("int8_qdq", OV),
        EngineCase("int8_ir", OV),
    )

    @pytest.fixture
    def contract_variants(self, request) -> dict[str, ModelVariant]:
        # Only the variant this case needs is built (INT8 quantization costs seconds).
        fixture = {
            "fp32_onnx": ("tiny_model_dir", Precision.FP32),
            "fp32_ir": ("tiny_ir_dir", Precision.FP32),
            "int8_qdq": ("tiny_int8_qdq_dir", Precision.INT8),
            "int8_ir": ("tiny_int8_ir_dir", Precision.INT8),
        }
        name = request.getfixturevalue("case").variant
        fixture_name, weights = fixture[name]
        return {name: ModelVariant(request.getfixturevalue(fixture_name), weights)}

    @pytest.fixture
    def contract_reference(self, tiny_retinanet):
        return lambda batch: torchvision_detect(tiny_retinanet, batch)

    @pytest.fixture
    def contract_images(self):
        return synthetic_images(6)


def dets(boxes, scores, labels) -> Detections:
    return Detections(np.array(boxes, np.float32), np.array(scores, np.float32), np.array(labels))


def test_the_template_matcher_tells_agreement_from_disagreement():
    ref = dets([[0, 0, 10, 10], [20, 20, 40, 40], [5, 5, 5, 9]], [0.9, 0.6, 0.5], [0, 1, 0])
    fp32 = TOLERANCES[Precision.FP32]
    assert agreement([ref], [ref], fp32, threshold=0.3) == {"ref": (1.0, 3), "got": (1.0, 3)}  # flat box too
    moved = dets([[0, 0, 10, 10], [21, 20, 41, 40], [5, 5, 5, 9]], [0.9, 0.6, 0.5], [0, 1, 0])
    assert agreement([ref], [moved], fp32, threshold=0.3)["ref"][0] == 2 / 3
    assert agreement([ref], [moved], TOLERANCES[Precision.INT8], threshold=0.3)["ref"][0] == 1.0
    relabelled = dets(ref.boxes, ref.scores, [0, 0, 0])
    assert agreement([ref], [relabelled], TOLERANCES[Precision.INT8], threshold=0.3)["got"][0] == 2 / 3
    # A list cut at max_detections: its last score is the floor; what is below may differ.
    assert agreement([ref], [ref[:2]], fp32, threshold=0.3, max_detections=2)["ref"] == (1.0, 1)
    assert agreement([ref], [ref[:2]], fp32, threshold=0.3)["ref"][0] == 2 / 3
