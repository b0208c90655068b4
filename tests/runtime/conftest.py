"""Session fixtures: the tiny torchvision RetinaNet exported as FP32 ONNX, FP32 IR and INT8."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from leanvision.core import ModelCard, Precision
from tests.runtime.tiny_retinanet import build_retinanet, export_model_dir, synthetic_images

INPUT_HW = (224, 200)  # not divisible by 32: torchvision strides 8x8, 16x15, 32x28


@pytest.fixture(scope="session")
def tiny_retinanet():
    return build_retinanet()


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_retinanet, tmp_path_factory) -> Path:
    """model.onnx + model_card.json."""
    return export_model_dir(tiny_retinanet, INPUT_HW, tmp_path_factory.mktemp("tiny_onnx"))


@pytest.fixture(scope="session")
def tiny_ir_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """model.xml/.bin with FP32 weights (compress_to_fp16=False) + the same card."""
    import openvino as ov

    out = tmp_path_factory.mktemp("tiny_ir")
    ov.save_model(ov.convert_model(tiny_model_dir / "model.onnx"), out / "model.xml", compress_to_fp16=False)
    shutil.copy(tiny_model_dir / "model_card.json", out)
    return out


def _calibration_batch(model_dir: Path) -> np.ndarray:
    from leanvision.runtime import load_predictor

    predictor = load_predictor(model_dir, backend="onnxruntime")
    return predictor.preprocess(synthetic_images(8, seed=1)).batch


def _int8_card(src: Path, out: Path) -> None:
    ModelCard.load(src).replace(precision=Precision.INT8).save(out)


@pytest.fixture(scope="session")
def tiny_int8_qdq_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """INT8 QDQ ONNX from ONNX Runtime's static quantizer (per-channel weights)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    batch = _calibration_batch(tiny_model_dir)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"images": batch[i : i + 1]} for i in range(len(batch)))

        def get_next(self):
            return next(self.items, None)

    out = tmp_path_factory.mktemp("tiny_int8_qdq")
    quantize_static(
        tiny_model_dir / "model.onnx", out / "model.onnx", Reader(), quant_format=QuantFormat.QDQ,
        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )
    _int8_card(tiny_model_dir, out)
    return out


@pytest.fixture(scope="session")
def tiny_int8_ir_dir(tiny_ir_dir, tiny_model_dir, tmp_path_factory) -> Path:
    """INT8 OpenVINO IR from NNCF post-training quantization."""
    import nncf
    import openvino as ov

    batch = _calibration_batch(tiny_model_dir)
    model = ov.Core().read_model(tiny_ir_dir / "model.xml")
    quantized = nncf.quantize(model, nncf.Dataset(list(batch[:, None])), subset_size=len(batch))
    out = tmp_path_factory.mktemp("tiny_int8_ir")
    ov.save_model(quantized, out / "model.xml", compress_to_fp16=False)
    _int8_card(tiny_model_dir, out)
    return out
