"""`leanvision demo --quick`: the README's main job end to end, at its small size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leanvision.demo import SUMMARY_KEYS

pytestmark = pytest.mark.slow


def test_quick_demo_prints_the_table_and_writes_every_summary_key(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "160"}
    result = subprocess.run([sys.executable, "-m", "leanvision", "demo", "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary)
    assert 0.0 <= summary["map50_fp32"] <= 1.0 and 0.0 <= summary["map50_int8"] <= 1.0
    assert summary["drop"] == pytest.approx(100 * (summary["map50_fp32"] - summary["map50_int8"]), abs=1e-3)
    assert summary["slides_per_s_fp32"] > 0 and summary["slides_per_s_int8"] > 0
    assert summary["speedup"] == pytest.approx(summary["slides_per_s_int8"] / summary["slides_per_s_fp32"])
    assert Path(summary["bench_html"]).is_file()
    for cell in ("FP32", "INT8", "mAP@0.5", "slides/s", "demo_summary.json"):
        assert cell in result.stdout


def test_classify_demo_runs_s1_path_and_reports_fp32_int8_with_and_without_tta(tmp_path):
    """`demo --task classify` at a tiny size: synth, train, FixRes, export, quantize, bench."""
    from typer.testing import CliRunner

    from leanvision.cli.main import app
    from leanvision.demo_classify import ClassifyDemoOptions

    tiny = ClassifyDemoOptions(classes=6, train_images=36, train_minutes=0.2, fixres_size=256, fixres_epochs=1,
                               calib_size=8, bench_seconds=0.3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ClassifyDemoOptions, "quick", classmethod(lambda cls, seed=0: tiny))
        result = CliRunner().invoke(app, ["demo", "--task", "classify", "--quick", "--out", str(tmp_path / "d")],
                                    env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output[-3000:]
    summary = json.loads((tmp_path / "d" / "demo_summary.json").read_text())
    assert set(summary["top1"]) == {"fp32 none", "fp32 flip", "int8 none", "int8 flip"}
    assert all(0.0 <= v <= 1.0 for v in summary["top1"].values())
    assert summary["speedup"] == pytest.approx(summary["images_per_s"]["int8 none"] / summary["images_per_s"]["fp32 none"])
    assert summary["fixres"]["test_size"] == [256, 256] and summary["fixres"]["train_size"] == [224, 224]
    assert Path(summary["bench_html"]).is_file()
    for cell in ("FP32", "INT8", "top-1 flip TTA", "FixRes", "demo_summary.json"):
        assert cell in result.output
