"""Ctrl-C (SIGINT) in the middle of a run: finished images are kept, the summary is written,
reader processes exit and no shared memory is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from leanvision.largeimage.pipeline.slots import NAME_PREFIX
from tests.largeimage.fakes import blob_image, random_boxes, write_image

ROOT = Path(__file__).resolve().parents[2]
IMAGES = 8

# A slow fake model (0.6 s per tile) over 8 images of 4 tiles: ~20 s if left alone, so the
# interrupt lands mid-run even on a loaded machine (at 0.25 s a busy CI run once finished first).
CHILD = """
import signal
import sys
# Ctrl-C in a shell reaches a process whose SIGINT handler is Python's default; a process
# started by one that ignores SIGINT inherits the ignore, and then no Ctrl-C ever arrives.
signal.signal(signal.SIGINT, signal.default_int_handler)
from leanvision.largeimage.pipeline import PipelineInterrupted, PipelineOptions, TilingOptions, run_pipeline
from tests.largeimage.fakes import BlobFactory

if __name__ == "__main__":
    options = PipelineOptions(tiling=TilingOptions(window=256), readers=2, batch=1)
    try:
        run_pipeline(BlobFactory((96, 128), requests=1, delay=0.6), [sys.argv[1]], options=options,
                     out_dir=sys.argv[2])
    except PipelineInterrupted:
        sys.exit(130)
"""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigint_keeps_finished_images_and_cleans_up(tmp_path):
    source = tmp_path / "images"
    for i in range(IMAGES):
        write_image(source / f"img{i}.jpg", blob_image((500, 380), random_boxes((500, 380), 4, seed=i), seed=i))
    out = tmp_path / "out"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Own session: the child and everything it starts share a process group to check after.
    child = subprocess.Popen([sys.executable, str(script), str(source), str(out)], env=env,
                             start_new_session=True, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("img*.json")) and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert child.poll() is None, f"the run ended before it could be interrupted: {child.stderr.read()}"
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    summary_file = out / "summary.json"
    assert child.returncode == 130, (stderr, summary_file.read_text() if summary_file.exists() else "no summary")

    summary = json.loads(summary_file.read_text())
    done = sorted(p.stem for p in out.glob("img*.json"))
    assert 1 <= summary["images"] == len(done) < IMAGES
    assert summary["images"] + len(summary["failed"]) == IMAGES
    assert all("interrupted" in f["reason"] for f in summary["failed"])
    assert {Path(f["path"]).stem for f in summary["failed"]}.isdisjoint(done)
    for stem in done:  # finished results are whole
        assert len(json.loads((out / f"{stem}.json").read_text())["detections"]) == 4
        assert (out / f"{stem}.csv").is_file()
    assert not list(out.glob(".*tmp*"))  # no half-written file

    assert not list(Path("/dev/shm").glob(f"{NAME_PREFIX}{child.pid}_*"))
    deadline = time.monotonic() + 10
    while _group_alive(child.pid) and time.monotonic() < deadline:  # readers, forkserver, tracker
        time.sleep(0.1)
    assert not _group_alive(child.pid)
