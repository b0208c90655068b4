"""Session fixtures: one tiny trained slim RetinaNet (ONNX + IR) and its damaged copy.

Every test module that uses them is in xdist group "compression_model", so with
`pytest -n 2 --dist loadgroup` they share one worker and the model is trained once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compression.tiny import damage, to_ir, train_tiny, write_crops


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """10 crops of 128 px with 8 abnormal-cell boxes (COCO): calibration and validation."""
    return write_crops(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def tiny_onnx(tiny_data, tmp_path_factory) -> Path:
    """The trained model exported as model.onnx + model_card.json (128 x 128 input)."""
    from leanvision.export import export_model

    root = tmp_path_factory.mktemp("tiny_model")
    train_tiny(tiny_data, root / "run")
    export_model(root / "run", format="onnx", out=root / "onnx", check=False)
    return root / "onnx"


@pytest.fixture(scope="session")
def tiny_ir(tiny_onnx, tmp_path_factory) -> Path:
    return to_ir(tiny_onnx, tmp_path_factory.mktemp("tiny_ir"))


@pytest.fixture(scope="session")
def damaged_onnx(tiny_onnx, tmp_path_factory) -> Path:
    return damage(tiny_onnx, tmp_path_factory.mktemp("damaged_onnx"))


@pytest.fixture(scope="session")
def damaged_ir(damaged_onnx, tmp_path_factory) -> Path:
    return to_ir(damaged_onnx, tmp_path_factory.mktemp("damaged_ir"))
