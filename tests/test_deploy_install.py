"""`pip install .[deploy]` in a fresh venv (no torch) runs `leanvision predict` and `bench`.

The venv is kept in `.venv-deploy/` at the repository root: the dependencies are installed
once (about a minute from pip's cache) and the package itself is reinstalled whenever
pyproject.toml or the source changes, so the test always runs the code of this tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-deploy"
INPUT_HW = (224, 200)
# One worker builds the venv: two pip installs into it at once collide (seen under xdist).
pytestmark = pytest.mark.xdist_group("deploy_venv")


def _stamp(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()


def _pip(*args: str) -> None:
    result = subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", *args],
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"pip install {' '.join(args)} failed:\n{result.stderr[-3000:]}")


@pytest.fixture(scope="module")
def deploy_venv() -> Path:
    deps_stamp, code_stamp = VENV / ".deps-stamp", VENV / ".code-stamp"
    deps = _stamp([ROOT / "pyproject.toml"])
    code = _stamp([ROOT / "pyproject.toml", *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "src").rglob("*.yaml"))])
    if not (deps_stamp.exists() and deps_stamp.read_text() == deps):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        _pip(f"{ROOT}[deploy]")  # not editable: what a deployment box gets
        deps_stamp.write_text(deps)
        code_stamp.write_text(code)
    elif not (code_stamp.exists() and code_stamp.read_text() == code):
        _pip("--no-deps", "--force-reinstall", str(ROOT))
        code_stamp.write_text(code)
    return VENV


@pytest.fixture(scope="module")
def model_and_image(tmp_path_factory) -> tuple[Path, Path]:
    from tests.runtime.tiny_retinanet import build_retinanet, export_model_dir, synthetic_images

    root = tmp_path_factory.mktemp("deploy")
    model = export_model_dir(build_retinanet(), INPUT_HW, root / "model")
    image = root / "image.jpg"
    cv2.imwrite(str(image), cv2.cvtColor(synthetic_images(1)[0], cv2.COLOR_RGB2BGR))
    return model, image


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "bin" / "leanvision"), *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


@pytest.mark.slow
def test_deploy_extra_has_no_torch(deploy_venv):
    result = subprocess.run([str(deploy_venv / "bin" / "python"), "-c", "import torch"], capture_output=True, text=True)
    assert result.returncode != 0 and "No module named 'torch'" in result.stderr


@pytest.mark.slow
def test_predict_runs_without_torch(deploy_venv, model_and_image, tmp_path):
    model, image = model_and_image
    result = _run(deploy_venv, "predict", str(model), str(image), "--out", str(tmp_path / "r.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    detections = json.loads((tmp_path / "r.json").read_text())
    assert detections["width"] == 200 and isinstance(detections["detections"], list)


@pytest.mark.slow
def test_bad_input_is_one_line_without_torch(deploy_venv, model_and_image, tmp_path):
    model, _ = model_and_image
    result = _run(deploy_venv, "predict", str(model), str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "r.json"),
                  cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "missing.jpg" in result.stderr


@pytest.mark.slow
def test_bench_runs_without_torch(deploy_venv, model_and_image, tmp_path):
    from leanvision.core import Detections
    from leanvision.data.formats import DetectionSet, Format, ImageRecord, write_detection

    model, image = model_and_image
    shutil.copy(image, tmp_path / "v0.jpg")
    record = ImageRecord("v0.jpg", 200, 224, Detections.from_boxes([[10, 10, 60, 50]], [0]), 1)
    write_detection(DetectionSet(("class0", "class1"), [record], tmp_path), tmp_path / "val", Format.COCO)
    result = _run(deploy_venv, "bench", str(model), "--data", str(tmp_path / "val"), "--out", str(tmp_path / "b"),
                  "--backends", "onnxruntime", "--batches", "1", "--requests", "1", "--seconds", "0.3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "b" / "bench.html").exists()
