"""kill -9 at every file-system step of an atomic write: the target is the old one or the new one.

A child process runs `replace_dir` (the commit of `export` and `quantize`) or `atomic_path`
and SIGKILLs itself right before its K-th file-system operation (a Python audit hook sees
each one: renames, removals, chmod, mkdtemp, foreign calls such as renameat2), for K = 1, 2,
... until a run completes; after each kill the target must be whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from leanvision.core.io import remove_stale_temps

STEPS = r"""
import os, signal, sys
from pathlib import Path
from leanvision.core.io import atomic_write_text, replace_dir

EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.chmod", "os.mkdir", "shutil.rmtree", "tempfile.mkdtemp",
          "tempfile.mkstemp", "ctypes.call_function"}
what, root, kill_at = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
seen = 0
def hook(event, args):
    global seen
    if event in EVENTS:
        seen += 1
        if seen == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
if what == "dir":
    replace_dir(root / ".out.staging.tmp", root / "out")
else:
    atomic_write_text(root / "metrics.jsonl", "new\n" * 1000)
"""

OLD = {"model.onnx": b"old model", "model_card.json": b"{\"old\": 1}"}
NEW = {"model.onnx": b"new model", "model_card.json": b"{\"new\": 2}", "parity.json": b"{}"}


def _write(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def _read(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}


def _run(what: str, root: Path, kill_at: int) -> int:
    return subprocess.run([sys.executable, "-c", STEPS, what, str(root), str(kill_at)], capture_output=True,
                          timeout=60).returncode


def _kill_at_every_step(tmp_path: Path, what: str, prepare, check) -> int:
    for kill_at in range(1, 30):
        root = tmp_path / f"kill{kill_at}"
        prepare(root)
        code = _run(what, root, kill_at)
        check(root, kill_at)
        if code == 0:
            return kill_at
        assert code == -signal.SIGKILL
    pytest.fail("the write never completed")


def test_replacing_an_export_directory_leaves_the_old_or_the_new_one(tmp_path):
    def prepare(root: Path) -> None:
        _write(root / "out", OLD)
        _write(root / ".out.staging.tmp", NEW)

    def check(root: Path, kill_at: int) -> None:
        assert _read(root / "out") in (OLD, NEW), f"killed before step {kill_at}: out is {_read(root / 'out')}"

    steps = _kill_at_every_step(tmp_path, "dir", prepare, check)
    assert _read(tmp_path / f"kill{steps}" / "out") == NEW
    assert steps >= 3  # the kills above did hit the commit: chmod, the exchange, the removal of the old one


def test_an_atomic_file_is_old_or_new_and_its_leftover_temp_file_is_removable(tmp_path):
    def prepare(root: Path) -> None:
        root.mkdir()
        (root / "metrics.jsonl").write_text("old\n")

    def check(root: Path, kill_at: int) -> None:
        assert (root / "metrics.jsonl").read_text() in ("old\n", "new\n" * 1000), kill_at
        others = sorted(p.name for p in root.iterdir() if p.name != "metrics.jsonl")
        assert [p.name for p in remove_stale_temps(root / "metrics.jsonl")] == others
        assert sorted(os.listdir(root)) == ["metrics.jsonl"]

    assert _kill_at_every_step(tmp_path, "file", prepare, check) >= 2


def test_a_dead_writers_staging_directory_is_removed_and_a_live_ones_kept(tmp_path):
    from leanvision.core.io import remove_stale_staging, staging_dir

    out = tmp_path / "model"
    dead = tmp_path / ".model.abcd1234.tmp"  # as a killed run leaves it: nobody holds its lock
    (dead / "sub").mkdir(parents=True)
    unrelated = [tmp_path / ".model.tmp", tmp_path / ".other.abcd1234.tmp", tmp_path / ".model.abcd1234.old"]
    for path in unrelated:
        path.mkdir()
    with staging_dir(out) as live:
        assert live.is_dir() and not dead.exists()
        assert remove_stale_staging(out) == [] and live.is_dir()  # another writer's sweep keeps it
        with staging_dir(out) as second:  # two writers of one output at once each keep their own
            assert second != live and live.is_dir()
        assert not second.exists()
    assert not live.exists()
    assert sorted(tmp_path.iterdir()) == sorted(unrelated)
