"""Fixtures of the CLI tests: a tiny exported RetinaNet (ONNX, ~5 s) and a tiny trained
checkpoint (the tiny grid detector, one epoch on 4 squares images, ~3 s)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from leanvision.models import register_model, unregister_model
from tests.helpers import run_cli
from tests.training.conftest import tiny_config, write_squares_set
from tests.training.tiny_detector import TinyGridDetector

TINY_INPUT_HW = (224, 200)
TINY_MODEL = "tiny_grid"  # the name its checkpoints' cards carry


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """tests/runtime's tiny torchvision RetinaNet exported (model.onnx + card; classes class0, class1)."""
    from tests.runtime.tiny_retinanet import build_retinanet, export_model_dir

    return export_model_dir(build_retinanet(), TINY_INPUT_HW, tmp_path_factory.mktemp("tiny_model"))


@contextlib.contextmanager
def _registered() -> Iterator[None]:
    """The tiny model registered only meanwhile: tests/training registers it per module too."""
    register_model(TINY_MODEL, task="detect")(lambda *, num_classes, weights_backbone=None: TinyGridDetector(num_classes))
    try:
        yield
    finally:
        unregister_model(TINY_MODEL)


@pytest.fixture
def tiny_registered() -> Iterator[None]:
    with _registered():
        yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(a trained run directory, its recipe, its squares data root with train/ and val/);
    request `tiny_registered` too to load its checkpoints."""
    root = tmp_path_factory.mktemp("cli_run")
    write_squares_set(root / "data" / "train", images=4, seed=1, negatives=1)
    write_squares_set(root / "data" / "val", images=4, seed=2, negatives=1)
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_config(root / "data", root / "run", epochs=1).to_dict()))
    with _registered():
        code, _, stderr = run_cli(["train", "--config", str(recipe)])
    assert code == 0, stderr
    return root / "run", recipe, root / "data"
