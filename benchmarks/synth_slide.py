"""Time and peak memory of writing one synthetic slide (pyramidal JPEG TIFF + JPEG).

Usage: python benchmarks/synth_slide.py [--size 12000] [--out DIR] [--threads N]

The slide is written by a child process, which reports its own peak RSS (VmHWM: see
`leanvision.core.resources`; ru_maxrss would carry the parent's). Prints one JSON line:
{"size", "seconds", "cpu_seconds", "peak_rss_mb", "raw_mb", "tif_mb", "jpg_mb", "abnormal"}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import sys
from pathlib import Path
from leanvision.data.synth.slides import write_slides
from leanvision.core.resources import peak_rss_mb
summary = write_slides(Path(sys.argv[1]), 1, int(sys.argv[2]), seed=0, progress=None)
print(summary["objects"] // 2, peak_rss_mb())
"""


def run(size: int, out: Path, threads: int | None) -> dict:
    env = dict(os.environ)
    if threads is not None:
        env["VIPS_CONCURRENCY"] = str(threads)  # libvips' worker threads (default: cores)
    start, cpu_start = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run([sys.executable, "-c", _CHILD, str(out), str(size)],
                            capture_output=True, text=True, check=True, env=env)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    images = out / "images"
    return {
        "size": size,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime - cpu_start.ru_utime - cpu_start.ru_stime, 2),
        "peak_rss_mb": round(float(result.stdout.split()[-1]), 1),
        "raw_mb": round(size * size * 3 / 2**20, 1),
        "tif_mb": round((images / "slide_000.tif").stat().st_size / 2**20, 1),
        "jpg_mb": round((images / "slide_000.jpg").stat().st_size / 2**20, 1),
        "abnormal": int(result.stdout.split()[-2]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12000, help="slide side in pixels")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=None, help="libvips threads (default: all cores)")
    args = parser.parse_args()
    if args.out is not None:
        print(json.dumps(run(args.size, args.out, args.threads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args.size, Path(tmp), args.threads)))


if __name__ == "__main__":
    main()
