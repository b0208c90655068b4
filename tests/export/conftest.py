"""Session fixtures: one lively slim RetinaNet checkpoint and its exports (each ~20-40 s)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch

from leanvision.export import export_model
from tests.export.slim import lively_slim, save_slim_checkpoint
from tests.helpers import run_cli
from tests.runtime.tiny_retinanet import synthetic_images

IR_INPUT = "192x256"  # the CLI export: another, non-square input size than the card's 256x256


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """One torch thread: the machine is shared, and parity needs no speed."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def slim():
    return lively_slim()


@pytest.fixture(scope="session")
def run_dir(slim, tmp_path_factory) -> Path:
    """A run directory holding best.pt (what `leanvision export RUN_DIR` reads)."""
    run = tmp_path_factory.mktemp("run")
    save_slim_checkpoint(run / "best.pt", slim)
    return run


@pytest.fixture(scope="session")
def onnx_export(run_dir, tmp_path_factory):
    """The body as model.onnx at the card's 256x256, parity-checked on both engines."""
    return export_model(run_dir / "best.pt", format="onnx", out=tmp_path_factory.mktemp("exports") / "onnx")


@pytest.fixture(scope="session")
def nms_export(run_dir, tmp_path_factory):
    """Decode + NMS in the graph, model.onnx at 256x256."""
    return export_model(run_dir, format="onnx", with_nms=True, out=tmp_path_factory.mktemp("exports") / "nms")


@pytest.fixture(scope="session")
def parity_dir(tmp_path_factory) -> Path:
    """Images of varied sizes (resized by the predictor) and one unreadable file."""
    root = tmp_path_factory.mktemp("parity_images")
    for i, image in enumerate(synthetic_images(3, seed=5)):
        assert cv2.imwrite(str(root / f"img_{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


@pytest.fixture(scope="session")
def cli_ir_export(run_dir, parity_dir, tmp_path_factory) -> tuple[Path, str]:
    """`leanvision export RUN_DIR --format openvino --input-size 192x256 --parity-images DIR`."""
    out = tmp_path_factory.mktemp("exports") / "ir"
    json_path = out.parent / "result.json"
    code, stdout, stderr = run_cli(["export", str(run_dir), "--format", "openvino", "--out", str(out),
                                    "--input-size", IR_INPUT, "--parity-images", str(parity_dir),
                                    "--json", str(json_path)])
    assert code == 0, stderr
    return out, stdout
