"""Shared fixtures: tiny purpose-made datasets written with OpenCV."""

from __future__ import annotations

import os

# pytest-xdist runs two workers on two cores: one compute thread each, or OpenMP/TBB pools
# oversubscribe the cores and spin (a MobileNetV2 forward measured 0.7 s -> 6.6 s). Set
# before torch, OpenVINO or ONNX Runtime is imported.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import cv2
import numpy as np
import pytest

from leanvision.core import Detections
from leanvision.data.formats import DetectionSet, Format, ImageRecord, write_detection


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A small noisy RGB image (JPEG or PNG by suffix)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def tiny_coco(tmp_path: Path) -> Path:
    """A clean 3-image COCO set (one negative) with classes cell, debris."""
    root = tmp_path / "coco"
    records = []
    for i, (w, h) in enumerate([(64, 48), (80, 60), (50, 50)], start=1):
        write_image(root / "images" / f"img_{i}.jpg", w, h, seed=i)
        boxes = np.array([[2, 3, 20, 30], [10, 5, 40, 25]], np.float32) if i < 3 else np.zeros((0, 4))
        records.append(ImageRecord(f"img_{i}.jpg", w, h, Detections.from_boxes(boxes, [0, 1][: len(boxes)]), i))
    write_detection(DetectionSet(("cell", "debris"), records, root / "images"), root, Format.COCO, copy_images=False)
    return root


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Every failure report names the CPU and its INT8 path (AVX2 / VNNI / AMX): INT8 kernels,
    and so INT8 numerics, differ between the machines the suite runs on."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        from leanvision.runtime.hardware import detect_cpu

        report.sections.append(("CPU and INT8 path", detect_cpu().summary()))


# The two longest tests (seconds on an AVX2 EPYC, one worker each): started first.
_LONGEST = ("tests/test_demo.py", "tests/training/test_overfit_retinanet.py")  # ~200 s, ~140 s


def pytest_collection_modifyitems(session, config, items):
    """The longest modules first, then the other modules holding a slow test, then the rest,
    each module kept whole (its module-scoped fixtures are built once). pytest-xdist hands
    tests out in this order, so the two longest start at once on the two workers and short
    tests fill in after them, instead of arriving last (they sort late) and running alone."""
    def path(item) -> str:
        return item.nodeid.split("::")[0]

    slow = {path(item) for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: 0 if path(item) in _LONGEST else 1 if path(item) in slow else 2)
