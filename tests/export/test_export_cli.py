"""`leanvision export`: end to end, and one-line errors (exit 2) for bad input."""

from __future__ import annotations

import json

import pytest

from leanvision.cli.export import parse_input_size
from leanvision.core import ConfigError, DataError, ModelError
from leanvision.export import export_model
from tests.helpers import run_cli


@pytest.mark.slow  # the export fixture takes ~20-40 s
def test_cli_exports_openvino_and_prints_files_and_parity(cli_ir_export):
    out, stdout = cli_ir_export
    lines = stdout.splitlines()
    assert lines[0].startswith(f"{out}: model.bin (") and "model.xml (" in lines[0]
    assert "input 192x256, outputs cls_logits, bbox_regression; layer groups backbone, fpn, head" in lines[1]
    assert lines[2].startswith("parity on 3 ") and "openvino batch 3: max|diff|" in lines[2]
    assert lines[3].startswith("time: load ")
    result = json.loads((out.parent / "result.json").read_text())
    assert result["out"] == str(out) and result["parity"]["passed"]
    assert result["layer_groups"]["fpn"] == "^fpn[./].*"


@pytest.mark.parametrize(("text", "size"), [("320x256", (320, 256)), ("320,256", (320, 256)),
                                            ("320 256", (320, 256)), ("512", (512, 512)), (None, None)])
def test_input_size_forms(text, size):
    assert parse_input_size(text) == size


@pytest.mark.parametrize("text", ["320x", "big", "3x2x1", "-5"])
def test_bad_input_size_is_a_config_error(text):
    with pytest.raises(ConfigError, match="--input-size must be HxW"):
        parse_input_size(text)


def error_line(args: list[str]) -> str:
    code, stdout, stderr = run_cli(args)
    assert code == 2, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("leanvision: error: "), stderr
    return lines[0]


def test_cli_bad_input_is_one_line_exit_2(run_dir, tmp_path):
    out = str(tmp_path / "out")
    assert "checkpoint not found" in error_line(["export", str(tmp_path / "nope.pt"), "-f", "onnx", "-o", out])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    assert "corrupt or unreadable checkpoint" in error_line(["export", str(corrupt), "-f", "onnx", "-o", out])
    assert "'tflite' is not one of" in error_line(["export", str(run_dir), "-f", "tflite", "-o", out])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = error_line(["export", str(run_dir), "-f", "onnx", "-o", str(blocker / "sub")])
    assert "cannot create the output directory" in line
    assert "--input-size must be" in error_line(["export", str(run_dir), "-f", "onnx", "-o", out, "--input-size", "x"])
    assert not (tmp_path / "out").exists()


def test_api_bad_input_fails_before_exporting(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        export_model(run_dir, format="tflite", out=tmp_path / "o")
    with pytest.raises(ModelError, match=r"no best\.pt or last\.pt"):
        export_model(tmp_path, format="onnx", out=tmp_path / "o")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        export_model(run_dir, format="onnx", out=tmp_path / "file")
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match=r"not an exported model .*'thesis\.tex'"):
        export_model(run_dir, format="onnx", out=home)
    assert (home / "thesis.tex").read_text() == "precious"
    with pytest.raises(DataError, match="parity image directory not found"):
        export_model(run_dir, format="onnx", out=tmp_path / "o", parity_images=tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no readable image for the parity check"):
        export_model(run_dir, format="onnx", out=tmp_path / "o", parity_images=tmp_path / "empty")
    with pytest.raises(ConfigError, match="positive"):
        export_model(run_dir, format="onnx", out=tmp_path / "o", input_size=(0, 64))
    assert not (tmp_path / "o").exists()
