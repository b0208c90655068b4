"""`leanvision bench` on a tiny exported model: the matrix, the three report files, the HTML."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from leanvision.core import Detections
from leanvision.data.formats import DetectionSet, Format, ImageRecord, write_detection
from tests.cli.test_cli import run
from tests.helpers import run_cli

INPUT_HW = (224, 200)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tests.runtime.tiny_retinanet import build_retinanet, export_model_dir

    return export_model_dir(build_retinanet(), INPUT_HW, tmp_path_factory.mktemp("bench_model"))


@pytest.fixture(scope="module")
def tiny_val(tmp_path_factory) -> Path:
    from tests.runtime.tiny_retinanet import synthetic_images

    root = tmp_path_factory.mktemp("bench_val")
    records = []
    for i, image in enumerate(synthetic_images(3)):
        (root / "images").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "images" / f"v{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        box = np.array([[10, 10, 60, 50]], np.float32)
        records.append(ImageRecord(f"v{i}.png", image.shape[1], image.shape[0], Detections.from_boxes(box, [0]), i + 1))
    write_detection(DetectionSet(("class0", "class1"), records, root / "images"), root, Format.COCO, copy_images=False)
    return root


@pytest.fixture(scope="module")
def bench_out(tiny_model, tiny_val, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench_out")
    code, _, err = run_cli(["bench", str(tiny_model), "--data", str(tiny_val), "--out", str(out),
                                  "--batches", "1,2", "--requests", "1,2", "--seconds", "0.4",
                                  "--slides", str(tiny_val / "images"), "--score", "pareto"])
    assert code == 0, err
    return out


def test_bench_writes_json_md_and_html_with_every_field(bench_out):
    data = json.loads((bench_out / "bench.json").read_text())
    cells = data["cells"]
    # 2 engines x 1 precision x 2 batches x 2 requests.
    assert len(cells) == 8 and {c["backend"] for c in cells} == {"onnxruntime", "openvino"}
    for cell in cells:
        for key in ("latency_ms_median", "latency_ms_p90", "images_per_s", "peak_rss_mb", "model_mb",
                    "slides_per_s", "engine_precision"):
            assert cell[key] is not None and cell[key] == cell[key], key  # not None, not NaN
        assert "map50" in cell["metrics"] and cell["latency_ms"]
        assert cell["latency_ms_p90"] >= cell["latency_ms_median"] > 0
    assert data["score"]["name"] == "pareto" and data["score"]["ranking"]
    assert "machine" in data["meta"] and "cores" in data["meta"]["machine"]
    md = (bench_out / "bench.md").read_text()
    assert "| model | weights | engine |" in md and "## Score: pareto" in md
    page = (bench_out / "bench.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<table id=\"summary\">" in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_bench_bad_input_is_one_line(tiny_model, tmp_path, capsys):
    code, _, err = run(["bench", str(tiny_model), "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "dataset not found" in err and err.count("\n") == 1
    code, _, err = run(["bench", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "model card not found" in err
    code, _, err = run(["bench", str(tiny_model), "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                        "--batches", "0"], capsys)
    assert code == 2 and "--batches needs positive integers" in err


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_bench_html_renders_the_summary_table_in_headless_chromium(bench_out, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Debian's chromium is not installed (make test installs it where apt-get can; "
                    "here it could not be installed)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = (bench_out / "bench.html").resolve().as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<table id="summary">' in dom.stdout and "onnxruntime" in dom.stdout
    shot = tmp_path / "bench.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1280,1600", url],
                   capture_output=True, text=True, timeout=120, check=True)
    image = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
    assert image is not None and image.shape == (1600, 1280)
    # The top of the page (title, meta, summary table) has text and table borders on white.
    top = image[:600]
    assert (top < 128).mean() > 0.005 and (top > 240).mean() > 0.5
    # The embedded plots decoded: the page's lower part is not blank.
    assert image[600:].std() > 10
