"""Fixtures for the counting tests: tiny blob crowds, a lively csrnet_mbv2 and its exports."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from leanvision.data.formats import CountingSet, PointRecord
from leanvision.data.formats.counting import write_points_json
from leanvision.models import create_model
from leanvision.training.checkpoint import save_checkpoint

HEIGHT, WIDTH = 96, 128  # the tiny crowds' size
MODEL_INPUT = (64, 96)  # (height, width) of the exported test model: not square, a multiple of 8


def blob_crowd(rng: np.random.Generator, height: int, width: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(height, width, 3) uint8 dark noise with `count` bright 5 px heads; their (count, 2) centres."""
    image = rng.integers(0, 50, (height, width, 3), dtype=np.uint8)
    points = np.stack([rng.uniform(3, width - 3, count), rng.uniform(3, height - 3, count)], 1).astype(np.float32)
    for x, y in points:
        colour = tuple(int(c) for c in rng.integers(170, 256, 3))
        cv2.circle(image, (round(float(x)), round(float(y))), 2, colour, -1, cv2.LINE_AA)
    return image, points.reshape(-1, 2)


def write_blob_set(root: Path, counts: list[int], *, seed: int, height: int = HEIGHT, width: int = WIDTH) -> Path:
    """A points.json counting set: one PNG per entry of `counts` with that many heads."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i, count in enumerate(counts):
        image, points = blob_crowd(rng, height, width, count)
        name = f"crowd_{i:02d}.png"
        assert cv2.imwrite(str(root / "images" / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        records.append(PointRecord(name, width, height, points))
    write_points_json(CountingSet(records, root / "images"), root)
    return root


@pytest.fixture(scope="session")
def blob_data(tmp_path_factory) -> Path:
    """train/ (6 images, one empty) and val/ (3 images, one empty) blob crowds."""
    root = tmp_path_factory.mktemp("blobs")
    write_blob_set(root / "train", [12, 30, 0, 45, 20, 8], seed=1)
    write_blob_set(root / "val", [25, 0, 10], seed=2)
    return root


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """One torch thread: the machine is shared, and tiny models gain nothing from more."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def lively_csrnet_mbv2(seed: int = 0) -> nn.Module:
    """csrnet_mbv2 with spread weights: CSRNet's std-0.01 init makes a density of ~1e-6
    everywhere, where a parity check would compare zeros. Kaiming convolutions, BatchNorm
    statistics as after training and a positive output bias give ~0.01-1 per cell."""
    torch.manual_seed(seed)
    model = create_model("csrnet_mbv2", num_classes=1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.uniform_(module.bias, -0.1, 0.1)
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        last = model.head[-1]
        last.weight.mul_(0.02)
        last.bias.fill_(0.05)
    return model.eval()


def save_count_checkpoint(path: Path, model: nn.Module, input_hw: tuple[int, int] = MODEL_INPUT) -> Path:
    """A minimal training checkpoint (model, card, config) that export and val read."""
    card = model.card(class_names=("object",), input_size=input_hw)
    config = {"model": {"name": model.name, "overrides": {}}}
    save_checkpoint(path, {"model": model.state_dict(), "card": card.to_dict(), "config": config})
    return path


@pytest.fixture(scope="session")
def lively() -> nn.Module:
    return lively_csrnet_mbv2()


@pytest.fixture(scope="session")
def count_checkpoint(lively, tmp_path_factory) -> Path:
    return save_count_checkpoint(tmp_path_factory.mktemp("count_run") / "best.pt", lively)


@pytest.fixture(scope="session")
def onnx_model(count_checkpoint, tmp_path_factory):
    """csrnet_mbv2 exported to model.onnx at 64x96, parity-checked on ONNX Runtime and OpenVINO."""
    from leanvision.export import export_model

    return export_model(count_checkpoint, format="onnx", out=tmp_path_factory.mktemp("exports") / "onnx")


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """Run `leanvision ARGS` in process through the real entry point: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from leanvision.cli import main as cli_main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            cli_main.main(args)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="session")
def large_crowd(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 300 x 220 px JPEG of blob heads (larger than the 96 x 64 model input) and its points."""
    root = tmp_path_factory.mktemp("large")
    image, points = blob_crowd(np.random.default_rng(7), 220, 300, 80)
    path = root / "crowd_large.jpg"
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path, points
