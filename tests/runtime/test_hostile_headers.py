"""Hostile headers and the remaining message defects: a PNG declaring 100000 x 100000 px is
refused from its header (no 28 GB allocation), library jargon and torch's advice never reach
the user, warnings stay one line off a terminal."""

from __future__ import annotations

import subprocess
import sys

import pytest

from leanvision.core.errors import DataError, ModelError, plain_reason
from leanvision.largeimage.readers import open_reader
from leanvision.largeimage.readers.base import MAX_DECODE_MB
from leanvision.runtime.preprocess import read_image
from tests.data.test_corrupt_images import hostile_png


@pytest.mark.parametrize(("width", "height"), [(100000, 100000), (30000, 30000)])
def test_a_hostile_png_header_is_refused_before_decoding(tmp_path, width, height):
    path = hostile_png(tmp_path / "bomb.png", width, height)
    for read in (lambda: read_image(path, 0), lambda: open_reader(path).read(0, 0, 512, 512, 256, 256)):
        with pytest.raises(DataError) as info:
            read()
        message = str(info.value)
        assert message.startswith(str(path)) and "\n" not in message
        assert f"{width}x{height}" in message and f"{MAX_DECODE_MB} MB" in message


@pytest.mark.parametrize(
    ("library", "plain"),
    [
        ("Premature end of JPEG file", "the file is truncated"),
        ("VipsForeignLoad: \"x.png\" is not a known file format", "not an image file"),
        ("libpng error: IHDR: CRC error", "the file is corrupt"),
        ("cannot identify image file 'x.png'", "not an image file"),
    ],
)
def test_library_jargon_is_translated_in_one_place(library, plain):
    assert plain_reason(library) == plain


@pytest.fixture
def bad_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    good = tmp_path / "good.pt"
    torch.save({"w": torch.zeros(64)}, good)
    (tmp_path / "text.pt").write_bytes(b"not a checkpoint at all\n")
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:200])
    return tmp_path


@pytest.mark.parametrize(("name", "reason"), [("text.pt", "not a PyTorch file"), ("truncated.pt", "truncated or corrupt")])
def test_a_bad_checkpoint_is_one_line_without_torchs_advice(bad_checkpoints, name, reason):
    from leanvision.models.weights import read_state_dict
    from leanvision.training.checkpoint import load_checkpoint

    for load in (load_checkpoint, read_state_dict):
        with pytest.raises(ModelError) as info:
            load(bad_checkpoints / name)
        message = str(info.value)
        assert reason in message and "\n" not in message
        assert "weights_only" not in message and "PyTorch 2.6" not in message


def test_warnings_stay_one_line_when_stderr_is_not_a_terminal():
    text = "warning: " + "x" * 120 + " /a/long/path/image.jpg: the file is truncated"
    code = f"from leanvision.cli.ui import console; console.print({text!r}, highlight=False)"
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert err == text + "\n"
