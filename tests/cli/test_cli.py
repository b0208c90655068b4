"""CLI smoke tests: help lists the stages, errors are one line with exit code 2."""

from __future__ import annotations

import pytest

from leanvision import __version__
from leanvision.cli.main import main


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def test_help_lists_every_stage(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for stage in ("data", "demo"):
        assert stage in out
    code, out, _ = run(["data", "--help"], capsys)
    for verb in ("synth", "convert", "check", "stats", "preview"):
        assert verb in out


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and __version__ in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data", "check", "/no/such/dir"], "/no/such/dir: dataset not found"),
        (["data", "convert", "a", "b", "--to", "xml"], "'xml' is not one of 'coco', 'voc', 'yolo'"),
        (["data", "nonsense"], "No such command 'nonsense'"),
        (["data", "synth", "--task", "track", "--out", "x"], "Invalid value for '--task'"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(args, expected, capsys):
    code, _, err = run(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("leanvision: error: ") and expected in err


def test_debug_shows_the_traceback(capsys):
    from leanvision.core import DataError

    with pytest.raises(DataError):
        main(["--debug", "data", "check", "/no/such/dir"])


def test_check_exit_codes(tiny_coco, capsys):
    code, out, _ = run(["data", "check", str(tiny_coco)], capsys)
    assert code == 0 and "0 problems" in out
    (tiny_coco / "images" / "img_2.jpg").write_bytes(b"")
    code, out, _ = run(["data", "check", str(tiny_coco)], capsys)
    assert code == 1 and "img_2.jpg: image file is empty" in out


def test_convert_and_stats(tmp_path, tiny_coco, capsys):
    code, out, _ = run(["data", "convert", str(tiny_coco), str(tmp_path / "voc"), "--to", "voc"], capsys)
    assert code == 0 and "3 images, 4 objects as voc" in out
    code, out, _ = run(["data", "stats", str(tmp_path / "voc"), "--out", str(tmp_path / "stats")], capsys)
    assert code == 0
    assert (tmp_path / "stats" / "stats.json").exists()
    assert (tmp_path / "stats" / "objects_per_class.png").exists()


def test_file_and_class_names_are_printed_as_written_never_as_markup(tmp_path, tiny_coco, capsys):
    """Rich markup is off for every CLI print: "[/b]" in a path or a class name is text."""
    import json
    import shutil

    odd = shutil.copytree(tiny_coco, tmp_path / "set[/b][red]")
    labels = json.loads((odd / "annotations.json").read_text())
    labels["categories"][0]["name"] = "[bold]cell[/bold]"
    (odd / "annotations.json").write_text(json.dumps(labels))
    code, out, err = run(["data", "check", str(odd)], capsys)
    assert code == 0 and f"{odd} (coco, detect): 3 images" in out, err
    code, out, err = run(["data", "convert", str(odd), str(tmp_path / "o[/i]"), "--to", "voc"], capsys)
    assert code == 0 and f"{tmp_path / 'o[/i]'}: 3 images, 4 objects as voc" in out, err
    code, out, err = run(["data", "anchors", str(odd)], capsys)
    assert code == 0 and "  [bold]cell[/bold]: 2 boxes" in out, err
