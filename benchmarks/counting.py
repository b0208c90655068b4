"""S3's crowd-counting table on synthetic crowds with large images: accuracy, time, S3 score.

Rows (MAE / RMSE / NAE over the large images, seconds per image through `run_pipeline`,
and S3's score (250 - MAE) * 0.2 + (500 - RMSE) * 0.1 + (0.4 - NAE) * 200 + (2 - s) * 100):

- `fp32 overlap b1`    FP32, overlapping tiles of the model input (`--overlap` px), batch 1:
                       S3's starting point, whose right and bottom strips are read twice;
- `fp32 fit2x2 b1`     FP32, each image resized to exactly 2x2 model inputs (S3's fit grid);
- `fp32 fit2x2 b4`     the same, the 4 tiles of an image in one call (S3's "4N batch");
- `int8 ... b4`        INT8 through `leanvision.compression.quantize` (OpenVINO / NNCF), fit
                       grid, batch 4, calibrated on 1 "similar" image (nearest the set's
                       centroid in backbone features, S3's hand pick automated), 1 random
                       image, and 100 random images (S3: the one similar image won).

Data: `leanvision.data.synth.synthesize(Task.COUNT, ...)` into `--work` (train/, val/, large/
with points.json) unless `--data` names such a folder. Model: `--checkpoint`, or a short run
of configs/s3_crowd_csrnet.yaml with `--model` (default csrnet_mbv2) and `--epochs`, then an
FP32 OpenVINO export at `--input-size` (S3: 576x768) with its parity check. Timings exclude
model loading and compilation; one warm-up image runs first.

Usage:
    python benchmarks/counting.py --work /tmp/s3bench                          # the lead
    python benchmarks/counting.py --work /tmp/s3bench --images 120 --epochs 100 --minutes 20 --crop 288x384 \
        optimizer.lr=0.0005                                                     # 20 CPU minutes of training
    python benchmarks/counting.py --work /tmp/s3q --images 8 --large-images 2 --large-size 1024 \\
        --epochs 1 --input-size 192x256 --calib-random 4                        # quick check

Prints a Markdown table (and `--json PATH` writes it) with the command, CPU and date.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "s3_crowd_csrnet.yaml"


@dataclasses.dataclass(frozen=True)
class Row:
    """One configuration of the table."""

    name: str
    precision: str  # "fp32" or "int8"
    fit_grid: bool
    batch: int
    calib: tuple[str, int] | None = None  # (selection, images) for INT8


def rows(calib_random: int) -> list[Row]:
    return [
        Row("fp32 overlap b1", "fp32", False, 1),
        Row("fp32 fit2x2 b1", "fp32", True, 1),
        Row("fp32 fit2x2 b4", "fp32", True, 4),
        Row("int8 fit2x2 b4, calib 1 similar", "int8", True, 4, ("similar", 1)),
        Row("int8 fit2x2 b4, calib 1 random", "int8", True, 4, ("random", 1)),
        Row(f"int8 fit2x2 b4, calib {calib_random} random", "int8", True, 4, ("random", calib_random)),
    ]


# ---------------------------------------------------------------- data, model, export


def ensure_data(args: argparse.Namespace) -> Path:
    """The synthetic crowds (train/, val/, large/), written once into the work folder."""
    if args.data is not None:
        return Path(args.data)
    from leanvision.core import Task
    from leanvision.data.synth import SUMMARY_FILE, synthesize

    root = Path(args.work) / "data"
    wanted = {"images": args.images, "large_images": args.large_images, "large_size": args.large_size}
    marker = root / "bench.json"
    if (root / SUMMARY_FILE).is_file() and marker.is_file() and json.loads(marker.read_text()) == wanted:
        return root
    print(f"writing synthetic crowds into {root} ...", file=sys.stderr)
    synthesize(Task.COUNT, root, images=args.images, large_images=args.large_images, large_size=args.large_size)
    marker.write_text(json.dumps(wanted))
    return root


def train_checkpoint(args: argparse.Namespace, data: Path) -> Path:
    """A short run of the S3 recipe on the synthetic crowds (or the given checkpoint)."""
    if args.checkpoint is not None:
        return Path(args.checkpoint)
    from leanvision.training import load_config, train

    run = Path(args.work) / f"run_{args.model}_{args.epochs}"
    if (run / "best.pt").is_file():
        return run / "best.pt"
    height, width = args.input_hw
    overrides = [f"data.train={data / 'train'}", f"data.val={data / 'val'}", f"model.name={args.model}",
                 f"schedule.epochs={args.epochs}", f"output={run}", f"data.input_size=[{height}, {width}]"]
    if args.minutes is not None:
        overrides.append(f"time_budget_minutes={args.minutes}")
    config = load_config(RECIPE, [*overrides, *args.overrides])
    # The recipe crops at its input size; crop at --crop (default: the input size asked for).
    # A fully convolutional model trains on smaller crops and is validated and deployed whole.
    crop_h, crop_w = args.crop_hw or args.input_hw
    steps = [dict(s, height=crop_h, width=crop_w) if s["op"] == "random_crop" else s for s in config.augment.steps]
    config = config.replace(augment=dataclasses.replace(config.augment, steps=tuple(steps)))
    print(f"training {args.model} ({args.epochs} epochs, budget {args.minutes} min, crops {crop_h}x{crop_w}) "
          f"into {run} ...", file=sys.stderr)
    result = train(config, progress=sys.stderr.isatty())
    print(f"best val MAE {result.best} (epoch {result.best_epoch})", file=sys.stderr)
    return run / ("best.pt" if (run / "best.pt").is_file() else "last.pt")


def export_fp32(args: argparse.Namespace, checkpoint: Path) -> Path:
    from leanvision.export import export_model

    out = Path(args.work) / "fp32"
    result = export_model(checkpoint, format="openvino", out=out, input_size=args.input_hw)
    print(f"exported {out}: {result.parity.summary() if result.parity else 'no parity check'}", file=sys.stderr)
    return out


def quantize_int8(args: argparse.Namespace, fp32: Path, data: Path, selection: str, images: int) -> Path:
    """INT8 (every layer) through `leanvision.compression.quantize` on OpenVINO; the
    calibration choice is the row's, val/ scores it (MAE) in the quantization report."""
    from leanvision.compression.quantize import (
        BudgetOptions,
        CalibrationOptions,
        QuantizeOptions,
        SpeedOptions,
        quantize,
    )

    options = QuantizeOptions(calibration=CalibrationOptions(size=images, select=selection, seed=args.seed),
                              budget=BudgetOptions(sensitivity=False), bench=SpeedOptions(seconds=0.0))
    out = Path(args.work) / f"int8_{selection}_{images}"
    result = quantize(fp32, calib=data / "train", val=data / "val", backend="openvino", out=out, options=options)
    print(f"  quantized ({selection}, {images} images): val MAE FP32 {result.fp32_score:.2f}, "
          f"INT8 {result.score:.2f}; chosen {result.report['calibration']['chosen'][:3]}", file=sys.stderr)
    return out


# ---------------------------------------------------------------- measurement


def large_images(data: Path) -> tuple[list[Path], list[float]]:
    from leanvision.data.formats import read_dataset

    dataset = read_dataset(data / "large")
    return [dataset.image_root / r.file_name for r in dataset.images], [float(len(r.points)) for r in dataset.images]


def measure(model_dir: Path, row: Row, paths: list[Path], truth: list[float], args: argparse.Namespace) -> dict[str, Any]:
    """Count every large image through the pipeline: accuracy, seconds per image, S3 score."""
    from leanvision.evaluation.counting import counting_metrics
    from leanvision.evaluation.scores import s3_formula
    from leanvision.largeimage import PipelineOptions, TilingOptions, run_pipeline
    from leanvision.runtime import EngineOptions, PerformanceHint, load_predictor

    tiling = TilingOptions(fit_grid=(2, 2)) if row.fit_grid else TilingOptions(overlap=args.overlap)
    options = PipelineOptions(tiling=tiling, batch=row.batch, readers=args.readers)
    engine = EngineOptions(performance=PerformanceHint.THROUGHPUT, threads=args.threads)
    with load_predictor(model_dir, options=engine) as predictor:
        run_pipeline(predictor, paths[:1], options=options)  # warm-up: first-call allocations
        seconds = []
        for _ in range(args.repeat):
            summary = run_pipeline(predictor, paths, options=options)
            seconds.append(summary.seconds / max(1, summary.images))
    counts = [summary.results[p].count for p in paths]
    metrics = counting_metrics(counts, truth)
    per_image = statistics.median(seconds)
    return {"row": row.name, "precision": row.precision, "tiles_per_image": summary.tiles / len(paths),
            "mae": metrics.mae, "rmse": metrics.rmse, "nae": metrics.nae, "seconds_per_image": per_image,
            "s3_score": s3_formula(metrics.mae, metrics.rmse, metrics.nae, per_image)}


def run_rows(args: argparse.Namespace, fp32: Path, data: Path) -> list[dict[str, Any]]:
    paths, truth = large_images(data)
    table = []
    for row in rows(args.calib_random):
        if args.rows and not any(key in row.name for key in args.rows):
            continue
        print(f"measuring {row.name} ...", file=sys.stderr)
        model_dir = fp32 if row.calib is None else quantize_int8(args, fp32, data, *row.calib)
        table.append(measure(model_dir, row, paths, truth, args))
    return table


# ---------------------------------------------------------------- report


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| row | tiles/image | MAE | RMSE | NAE | s/image | S3 score |", "|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['row']} | {r['tiles_per_image']:.1f} | {r['mae']:.2f} | {r['rmse']:.2f} | "
                     f"{r['nae']:.3f} | {r['seconds_per_image']:.3f} | {r['s3_score']:.1f} |")
    return "\n".join(lines)


def machine() -> str:
    """The CPU model and core count, as BENCHMARKS.md records them."""
    import os

    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/leanvision-s3-bench", help="work folder (data, runs, models)")
    parser.add_argument("--data", default=None, help="an existing synthetic-crowd root (train/, val/, large/)")
    parser.add_argument("--images", type=int, default=120, help="synthetic training images (val gets ~1/4)")
    parser.add_argument("--large-images", type=int, default=10, help="synthetic large images (the scored set)")
    parser.add_argument("--large-size", type=int, default=2048, help="large image width, px (S3: up to 2048)")
    parser.add_argument("--checkpoint", default=None, help="a trained counting checkpoint (skips training)")
    parser.add_argument("--model", default="csrnet_mbv2", help="registry name trained when no checkpoint is given")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs when no checkpoint is given")
    parser.add_argument("--input-size", default="576x768", help="exported model input HxW (S3: 576x768)")
    parser.add_argument("--crop", default=None, help="training crop HxW (default: the input size)")
    parser.add_argument("--minutes", type=float, default=None, help="training wall-time budget (cosine fitted)")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for the training run, key=value")
    parser.add_argument("--overlap", type=int, default=64, help="overlap of the overlapping-tiles row, px")
    parser.add_argument("--calib-random", type=int, default=100, help="images of the large random calibration")
    parser.add_argument("--readers", type=int, default=2, help="pipeline reader processes")
    parser.add_argument("--threads", type=int, default=None, help="engine threads (default: all cores)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the large images (median)")
    parser.add_argument("--rows", default="", help="only rows whose name contains one of these (comma-separated)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    height, _, width = args.input_size.lower().partition("x")
    args.input_hw = (int(height), int(width or height))
    args.crop_hw = None
    if args.crop:
        crop_h, _, crop_w = args.crop.lower().partition("x")
        args.crop_hw = (int(crop_h), int(crop_w or crop_h))
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = ensure_data(args)
    fp32 = export_fp32(args, train_checkpoint(args, data))
    table = run_rows(args, fp32, data)
    header = (f"`python benchmarks/counting.py {' '.join(sys.argv[1:])}` on {machine()}, "
              f"{datetime.date.today().isoformat()}, Python {platform.python_version()} "
              f"({time.perf_counter() - start:.0f} s in all)")
    print(header)
    print(markdown(table))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": header, "rows": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
