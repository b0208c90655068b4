"""The engine contract template instantiated for the exported slim RetinaNet (FP32 on both engines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from leanvision.runtime import Backend
from tests.runtime.tiny_retinanet import synthetic_images
from tests.templates.engine_contract import EngineCase, EngineContractTests, ModelVariant

pytestmark = pytest.mark.slow  # uses the ~20-40 s export fixtures

ORT, OV = Backend.ONNXRUNTIME, Backend.OPENVINO


class TestExportedSlimRetinaNet(EngineContractTests):
    # INT8 variants come with the quantization issue.
    CASES = (
        EngineCase("fp32_onnx", ORT),
        EngineCase("fp32_onnx", OV),
        EngineCase("fp32_ir", OV),
    )

    @pytest.fixture
    def contract_variants(self, onnx_export, cli_ir_export) -> dict[str, ModelVariant]:
        return {"fp32_onnx": ModelVariant(onnx_export.out), "fp32_ir": ModelVariant(cli_ir_export[0])}

    @pytest.fixture
    def contract_reference(self, slim):
        @torch.no_grad()
        def reference(batch: np.ndarray):
            return slim.detect(torch.from_numpy(np.ascontiguousarray(batch)))

        return reference

    @pytest.fixture
    def contract_images(self):
        return synthetic_images(4, seed=3)
