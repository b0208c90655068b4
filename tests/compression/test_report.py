"""Report rendering: JSON, Markdown and a self-contained HTML embedding the chart."""

from __future__ import annotations

import base64
import json
import re

from leanvision.compression.quantize.report import (
    CHART_PNG,
    REPORT_HTML,
    REPORT_JSON,
    REPORT_MD,
    write_reports,
)
from leanvision.compression.quantize.sensitivity import LayerSensitivity, Sensitivity

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report() -> tuple[dict, Sensitivity]:
    layers = (LayerSensitivity("fpn.inner_blocks.0.0/Conv", "fpn", 0.01, 0.05),
              LayerSensitivity("backbone.body.0.0/Conv", "backbone", 0.05, 0.01),
              LayerSensitivity("head.cls_logits/Conv", "head", 0.06, -0.001))
    sensitivity = Sensitivity(0.06, layers, 4, 1.5)
    report = {
        "model_dir": "m", "backend": "openvino", "warnings": ["INT8 (all layers) is not faster than FP32 <here>"],
        "cpu": {"model": "cpu", "cores": 2, "int8_path": "AVX2 (no VNNI)", "bf16": False,
                "openvino_capabilities": ["FP32", "INT8"]},
        "options": {"budget": {"chart_layers": 30}},
        "metric": {"key": "map50", "label": "mAP@0.5", "higher_is_better": True, "unit": "points"},
        "models": [{"label": "FP32", "map50": 0.9, "drop": 0.0, "images_per_s": 10.0, "speedup": 1.0,
                    "precision": "fp32", "fp32_layers": 0},
                   {"label": "saved", "map50": 0.898, "drop": 0.2, "images_per_s": 9.0, "speedup": 0.9,
                    "precision": "fp32", "fp32_layers": 1}],
        "fp32_layers": ["fpn.inner_blocks.0.0/Conv"], "fp32_other_nodes": ["fpn/Add"],
        "sensitivity": sensitivity.to_dict(),
        "budget": {"budget": 0.5, "reached": False,
                   "best": {"kept": 1, "how": "requantized", "drop": 0.6},
                   "candidates": [{"kept": 0, "how": "requantized", "score": 0.88, "drop": 2.0},
                                  {"kept": 1, "how": "requantized", "score": 0.894, "drop": 0.6}]},
        "calibration": {"images": 4, "selection": "similar", "seed": 0, "files": 10, "source": "c",
                        "subset_size": 4, "skipped": [], "grayscale": 0},
        "sweep": [{"images": 1, "map50": 0.85, "drop": 5.0}],
    }
    return report, sensitivity


def test_reports_are_written_and_the_html_embeds_the_chart(tmp_path):
    report, sensitivity = _report()
    written = write_reports(tmp_path, report, sensitivity)
    assert {p.name for p in written} == {REPORT_JSON, REPORT_MD, REPORT_HTML, CHART_PNG}
    assert json.loads((tmp_path / REPORT_JSON).read_text())["fp32_layers"] == ["fpn.inner_blocks.0.0/Conv"]
    html = (tmp_path / REPORT_HTML).read_text()
    encoded = re.search(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert encoded is not None and base64.b64decode(encoded.group(1)).startswith(PNG_MAGIC)
    assert "src='quant" not in html and "<link" not in html  # self-contained: nothing loaded from disk
    assert "&lt;here&gt;" in html  # text is escaped
    assert (tmp_path / CHART_PNG).read_bytes().startswith(PNG_MAGIC)


def test_markdown_says_what_the_html_says(tmp_path):
    report, sensitivity = _report()
    write_reports(tmp_path, report, sensitivity)
    markdown = (tmp_path / REPORT_MD).read_text()
    assert "> **Warning:** INT8 (all layers) is not faster than FP32" in markdown
    assert "Accuracy budget: 0.5 points of mAP@0.5, NOT reached" in markdown
    assert f"![per-layer sensitivity]({CHART_PNG})" in markdown
    assert "| 1 | fpn.inner_blocks.0.0/Conv | fpn |" in markdown  # most sensitive first
    assert "- `fpn.inner_blocks.0.0/Conv`" in markdown and "fpn/Add" in markdown
    assert "| 1 | 0.8500 | 5.0000 |" in markdown  # the sweep row


def test_without_sensitivity_there_is_no_chart(tmp_path):
    report, _ = _report()
    report["sensitivity"] = None
    written = write_reports(tmp_path, report, None)
    assert CHART_PNG not in {p.name for p in written}
    assert "data:image/png" not in (tmp_path / REPORT_HTML).read_text()


def test_a_counting_report_speaks_of_mae_in_objects(tmp_path):
    report, _ = _report()
    report["metric"] = {"key": "mae", "label": "MAE", "higher_is_better": False, "unit": "objects per image"}
    report["models"] = [{"label": "FP32", "mae": 3.25, "drop": 0.0}, {"label": "saved", "mae": 3.5, "drop": 0.25}]
    report["sweep"] = [{"images": 1, "mae": 4.0, "drop": 0.75}]
    report["sensitivity"] = None
    write_reports(tmp_path, report, None)
    markdown = (tmp_path / REPORT_MD).read_text()
    assert "| model | MAE | drop (objects per image) |" in markdown
    assert "| saved | 3.5000 | 0.2500 |" in markdown and "| 1 | 4.0000 | 0.7500 |" in markdown
    assert "Accuracy budget: 0.5 objects per image of MAE, NOT reached" in markdown
    assert "lower is better" in markdown
