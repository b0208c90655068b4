"""Reader table: seconds and peak RSS to cut a large image into model inputs, per library.

S0's setting: a 12000 x 12000 image, non-overlapping 1600 px windows resized to 800 px
(64 tiles), one core. For a synthetic JPEG and a tiled pyramidal JPEG TIFF made here
(tifffile; no other generator needed), each reader runs in its own subprocess (clean peak
RSS) in the modes that apply to it:

- `cv2 full decode` (baseline, S0/SAHI): cv2.imread the whole image, crop + resize each tile;
- `full-res`: the reader with `ReaderOptions(reduced=False)`: whole decode for JPEG,
  full-resolution windowed tile reads for TIFF;
- `reduced`: the reader's default: DCT-scaled decode (JPEG) / pyramid level + DCT-scaled
  tiles (TIFF), windowed where the format allows;
- `reduced, bands`: simplejpeg's reader forced to decode the JPEG in bands of rows (libvips,
  sequential), as it does by default for JPEGs whose whole decode exceeds 512 MB.

Usage:
    python benchmarks/readers.py                       # the real table (lead, quiet machine)
    python benchmarks/readers.py --size 2400 --window 320 --out 160   # quick validation

Prints a Markdown table (and `--json PATH` writes it) with the command, CPU and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ONE_CORE_ENV = {"OMP_NUM_THREADS": "1", "VIPS_CONCURRENCY": "1", "OPENBLAS_NUM_THREADS": "1", "GDAL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Case:
    """One row: which file, which reader (or the cv2 baseline), which mode."""

    file: str  # "jpeg" or "tiff"
    reader: str  # a ReaderKind value, or "cv2-baseline"
    mode: str  # "full decode", "full-res", "reduced", "reduced, bands"


CASES = [
    Case("jpeg", "cv2-baseline", "full decode"),
    Case("jpeg", "opencv", "reduced"),
    Case("jpeg", "pillow", "reduced"),
    Case("jpeg", "rasterio", "full-res"),
    Case("jpeg", "rasterio", "reduced"),
    Case("jpeg", "pyvips", "full-res"),
    Case("jpeg", "pyvips", "reduced"),
    Case("jpeg", "simplejpeg", "full-res"),
    Case("jpeg", "simplejpeg", "reduced"),
    Case("jpeg", "simplejpeg", "reduced, bands"),
    Case("tiff", "cv2-baseline", "full decode"),
    Case("tiff", "openslide", "reduced"),
    Case("tiff", "rasterio", "reduced"),
    Case("tiff", "pyvips", "reduced"),
    Case("tiff", "tifffile", "full-res"),
    Case("tiff", "tifffile", "reduced"),
]


# ---------------------------------------------------------------- synthetic images


def synthetic_image(size: int, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8: a stained-slide-like texture (pale background, darker blobs,
    fine grain) so that JPEG entropy decoding costs what it costs on real slides."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 1, (size // 64 + 2, size // 64 + 2, 3))
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    image = np.empty((size, size, 3), np.uint8)
    band = 1024  # fill in row bands: one float32 band at a time, not the whole image
    for y in range(0, size, band):
        rows = min(band, size - y)
        grain = cv2.GaussianBlur(rng.normal(0, 9, (rows, size, 3)).astype(np.float32), (0, 0), 0.8)
        tint = np.array([225, 205, 230], np.float32) + 25 * field[y : y + rows] + grain
        image[y : y + rows] = np.clip(tint, 0, 255).astype(np.uint8)
    for cx, cy, r in zip(*rng.uniform(0, size, (2, size // 40)), rng.uniform(8, 40, size // 40), strict=True):
        cv2.circle(image, (int(cx), int(cy)), int(r), (int(rng.integers(90, 160)), 60, 140), -1, cv2.LINE_AA)
    return image


def write_inputs(workdir: Path, size: int) -> dict[str, Path]:
    """The JPEG and the pyramidal JPEG TIFF (cached in workdir by size)."""
    import cv2
    import simplejpeg
    import tifffile

    from leanvision.largeimage.readers.headers import JPEG_MAX_SIDE

    if size > JPEG_MAX_SIDE:
        raise SystemExit(f"--size {size}: JPEG sides are at most {JPEG_MAX_SIDE} px")
    paths = {"jpeg": workdir / f"synthetic_{size}.jpg", "tiff": workdir / f"synthetic_{size}_pyramid.tif"}
    if all(p.exists() for p in paths.values()):
        return paths
    workdir.mkdir(parents=True, exist_ok=True)
    image = synthetic_image(size)
    paths["jpeg"].write_bytes(simplejpeg.encode_jpeg(image, quality=90, colorsubsampling="420"))
    with tifffile.TiffWriter(paths["tiff"], bigtiff=size > 20000) as tw:
        level, first = image, True
        while first or max(level.shape[:2]) >= 1024:  # main-chain pages: OpenSlide reads them
            tw.write(level, tile=(512, 512), photometric="rgb", compression="jpeg",
                     compressionargs={"level": 90}, subfiletype=0 if first else 1)
            h, w = level.shape[:2]
            level, first = cv2.resize(level, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA), False
    return paths


# ---------------------------------------------------------------- one measurement (child)


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MB (VmHWM: see leanvision.core.resources)."""
    from leanvision.core.resources import peak_rss_mb as measured

    return measured()


def run_baseline(path: Path, window: int, out: int) -> tuple[int, float]:
    """S0's first reader: cv2.imread the whole image, then crop + resize every window."""
    import cv2

    from leanvision.largeimage.grid import plan_grid

    image = cv2.imread(str(path))
    if image is None:
        raise RuntimeError(f"cv2.imread failed on {path}")
    tiles = plan_grid(image.shape[1], image.shape[0], window=window, out_size=out)
    buf, total = np.empty((out, out, 3), np.uint8), 0.0
    for t in tiles:
        cv2.resize(image[t.y : t.y + t.h, t.x : t.x + t.w], (out, out), dst=buf, interpolation=cv2.INTER_AREA)
        total += float(buf[::64, ::64].mean())
    return len(tiles), total


def run_reader(path: Path, kind: str, mode: str, window: int, out: int) -> tuple[int, float]:
    from leanvision.largeimage.grid import plan_grid
    from leanvision.largeimage.readers import ReaderOptions, open_reader

    bands = 0 if mode.endswith("bands") else 8192  # MB of whole decode above which JPEGs go in bands
    options = ReaderOptions(reduced=mode.startswith("reduced"), max_decode_mb=8192, band_above_mb=bands)
    with open_reader(path, kind=kind, options=options) as reader:
        tiles = plan_grid(*reader.size, window=window, out_size=out)
        buf, total = np.empty((out, out, 3), np.uint8), 0.0
        for t in tiles:
            reader.read(*t.window, t.out_w, t.out_h, out=buf)
            total += float(buf[::64, ::64].mean())
    return len(tiles), total


LIBRARY = {"cv2-baseline": "cv2", "opencv": "cv2", "pillow": "PIL.Image", "rasterio": "rasterio",
           "pyvips": "pyvips", "simplejpeg": "simplejpeg", "tifffile": "tifffile", "openslide": "openslide"}


def child(spec: dict) -> None:
    """Measure one case in this (fresh) process and print one JSON line."""
    import importlib

    import cv2

    cv2.setNumThreads(1)
    importlib.import_module(LIBRARY[spec["reader"]])  # import cost is not reading cost
    path, window, out = Path(spec["path"]), spec["window"], spec["out"]
    base = peak_rss_mb()
    start = time.perf_counter()
    if spec["reader"] == "cv2-baseline":
        tiles, checksum = run_baseline(path, window, out)
    else:
        tiles, checksum = run_reader(path, spec["reader"], spec["mode"], window, out)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "base_rss_mb": base, "tiles": tiles, "checksum": checksum}))


# ---------------------------------------------------------------- the table (parent)


def measure(case: Case, path: Path, args: argparse.Namespace) -> dict:
    spec = {**asdict(case), "path": str(path), "window": args.window, "out": args.out}
    env = {**os.environ, **ONE_CORE_ENV}
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, env=env, timeout=args.timeout
    )
    row = {**asdict(case)}
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        row["error"] = lines[-1] if lines else f"exit {result.returncode}"
        return row
    return {**row, **json.loads(result.stdout.strip().splitlines()[-1])}


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} cores"


def table(rows: list[dict]) -> str:
    lines = ["| file | reader | mode | tiles | seconds | tiles/s | peak RSS MB | (after imports) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['file']} | {r['reader']} | {r['mode']} | - | error: {r['error'][:90]} | | | |")
            continue
        lines.append(
            f"| {r['file']} | {r['reader']} | {r['mode']} | {r['tiles']} | {r['seconds']:.3f} | "
            f"{r['tiles'] / r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['base_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12000, help="image side, pixels")
    parser.add_argument("--window", type=int, default=1600, help="window side, level-0 pixels")
    parser.add_argument("--out", type=int, default=800, help="model input side, pixels")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/leanvision-bench-readers"))
    parser.add_argument("--only", nargs="*", default=None, help="readers to run (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the fastest is kept")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return
    paths = write_inputs(args.workdir, args.size)
    print(f"# readers: {args.size}px image, {args.window}px windows -> {args.out}px, one core")
    print(f"command: python benchmarks/readers.py {' '.join(sys.argv[1:])}")
    print(f"machine: {machine()}; date: {datetime.date.today().isoformat()}")
    print(f"files: {paths['jpeg'].stat().st_size / 2**20:.1f} MB JPEG, {paths['tiff'].stat().st_size / 2**20:.1f} MB TIFF\n")
    rows = []
    for case in CASES:
        if args.only and case.reader not in args.only:
            continue
        runs = [measure(case, paths[case.file], args) for _ in range(args.repeat)]
        good = [r for r in runs if "error" not in r]
        rows.append(min(good, key=lambda r: r["seconds"]) if good else runs[0])
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print("\n" + table(rows))
    if args.json:
        from leanvision.core.io import atomic_write_text

        payload = {"size": args.size, "window": args.window, "out": args.out, "machine": machine(), "rows": rows}
        atomic_write_text(args.json, json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
