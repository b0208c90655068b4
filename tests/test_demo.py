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
