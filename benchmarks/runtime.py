"""Runtime engine speed: latency and throughput per engine, mode, precision and batch size.

    .venv/bin/python benchmarks/runtime.py --model-dir exported/retinanet --seconds 20

Measures, at batch 1 and 8 (`--batches`), on random input of the card's size:
- ONNX Runtime FP32, sync;
- OpenVINO FP32 sync (LATENCY hint) and async (THROUGHPUT hint, AsyncInferQueue with the
  plugin's optimal number of requests);
- OpenVINO bf16 sync: the precision column says what actually ran (f32 on CPUs without bf16);
- OpenVINO's `benchmark_app` on the same IR (FP32 forced with `-infer_precision f32`),
  latency and throughput hints, as the reference for what the plugin can do;
- the OpenVINO FP32 predictor end to end (preprocess + infer + decode + NMS) at batch 1.

Prints a Markdown table, the async/sync and ours/benchmark_app ratios, and the machine.
Torch-free. The model directory holds `model_card.json` and `model.onnx` and/or
`model.xml`; a missing one is converted from the other (ONNX -> IR with OpenVINO) into a
temporary directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from leanvision.core import ModelCard
from leanvision.core.io import atomic_write_text
from leanvision.runtime import (
    EngineOptions,
    PerformanceHint,
    PrecisionHint,
    load_predictor,
    open_engine,
)


@dataclasses.dataclass(frozen=True)
class Row:
    """One measurement: latency per call (ms) and throughput (images per second)."""

    engine: str
    mode: str
    precision: str
    batch: int
    median_ms: float
    p90_ms: float
    images_per_s: float


def latency_stats(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000.0
    return float(np.median(ms)), float(np.percentile(ms, 90))


def time_sync(call: Callable[[], object], seconds: float, warmup: int) -> list[float]:
    """Per-call durations of `call` run back to back for `seconds` (after `warmup` calls)."""
    for _ in range(warmup):
        call()
    durations: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or not durations:
        start = time.perf_counter()
        call()
        durations.append(time.perf_counter() - start)
    return durations


def sync_row(name: str, engine, batch: np.ndarray, seconds: float, warmup: int) -> Row:
    durations = time_sync(lambda: engine.infer(batch), seconds, warmup)
    median, p90 = latency_stats(durations)
    return Row(name, "sync", engine.precision.value, len(batch), median, p90, len(batch) * len(durations) / sum(durations))


def async_row(name: str, engine, batch: np.ndarray, seconds: float, warmup: int) -> Row:
    """Keep every request busy for `seconds`; latency is submit -> callback per request."""
    for _ in range(warmup):
        engine.infer(batch)
    latencies: list[float] = []
    lock = threading.Lock()

    def on_done(started: float) -> Callable[[dict], None]:
        def record(outputs: dict) -> None:
            with lock:
                latencies.append(time.perf_counter() - started)
        return record

    start = time.perf_counter()
    submitted = 0
    while time.perf_counter() - start < seconds or submitted == 0:
        engine.submit(batch, on_done(time.perf_counter()))  # blocks while all requests are busy
        submitted += 1
    engine.wait_all()
    elapsed = time.perf_counter() - start
    median, p90 = latency_stats(latencies)
    mode = f"async x{engine.num_requests}"
    return Row(name, mode, engine.precision.value, len(batch), median, p90, len(batch) * submitted / elapsed)


def predictor_row(ir: Path, card: ModelCard, seconds: float, warmup: int) -> Row:
    predictor = load_predictor(ir.parent, backend="openvino")  # the IR's directory has the card
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (card.input.height, card.input.width, 3), dtype=np.uint8)
    durations = time_sync(lambda: predictor([image]), seconds, warmup)
    median, p90 = latency_stats(durations)
    return Row("OpenVINO predictor (pre+infer+post)", "sync", predictor.engine.precision.value, 1, median, p90,
               len(durations) / sum(durations))


def benchmark_app_row(app: Path, ir: Path, input_name: str, shape: tuple[int, ...], hint: str, seconds: float) -> Row:
    """Run OpenVINO's benchmark_app and read its median latency and throughput."""
    command = [
        str(app), "-m", str(ir), "-d", "CPU", "-hint", hint, "-infer_precision", "f32",
        "-t", str(max(1, round(seconds))), "-shape", f"{input_name}[{','.join(map(str, shape))}]",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 300, check=True).stdout
    median = float(re.search(r"Median:\s+([\d.]+) ms", out).group(1))
    fps = float(re.search(r"Throughput:\s+([\d.]+) FPS", out).group(1))
    return Row("benchmark_app", hint, "f32", shape[0], median, float("nan"), fps)


def ensure_ir(model_dir: Path, workdir: Path) -> Path:
    """The directory's IR, or one converted from its ONNX (FP32 weights kept)."""
    if (model_dir / "model.xml").is_file():
        return model_dir / "model.xml"
    import openvino as ov

    ir = workdir / "model.xml"
    ov.save_model(ov.convert_model(str(model_dir / "model.onnx")), str(ir), compress_to_fp16=False)
    shutil.copy(model_dir / "model_card.json", workdir)
    return ir


def ensure_onnx(model_dir: Path) -> Path | None:
    path = model_dir / "model.onnx"
    return path if path.is_file() else None


def engine_rows(onnx: Path | None, ir: Path, batch: np.ndarray, seconds: float, warmup: int) -> list[Row]:
    rows = []
    if onnx is not None:
        with open_engine(onnx, backend="onnxruntime") as eng:
            rows.append(sync_row("ONNX Runtime", eng, batch, seconds, warmup))
    with open_engine(ir) as eng:
        rows.append(sync_row("OpenVINO", eng, batch, seconds, warmup))
    throughput = EngineOptions(performance=PerformanceHint.THROUGHPUT)
    with open_engine(ir, options=throughput) as eng:
        rows.append(async_row("OpenVINO", eng, batch, seconds, warmup))
    with open_engine(ir, options=EngineOptions(precision=PrecisionHint.BF16)) as eng:
        rows.append(sync_row("OpenVINO bf16 requested", eng, batch, seconds, warmup))
    return rows


def markdown(rows: list[Row]) -> str:
    lines = [
        "| engine | mode | precision run | batch | median ms | p90 ms | images/s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        p90 = "-" if np.isnan(r.p90_ms) else f"{r.p90_ms:.2f}"
        lines.append(f"| {r.engine} | {r.mode} | {r.precision} | {r.batch} | {r.median_ms:.2f} | {p90} | {r.images_per_s:.1f} |")
    return "\n".join(lines)


def find(rows: list[Row], engine: str, mode_prefix: str, batch: int) -> Row | None:
    return next((r for r in rows if r.engine == engine and r.mode.startswith(mode_prefix) and r.batch == batch), None)


def ratios(rows: list[Row], batches: list[int]) -> list[str]:
    lines = []
    for b in batches:
        sync, asyn = find(rows, "OpenVINO", "sync", b), find(rows, "OpenVINO", "async", b)
        app_tp, app_lat = find(rows, "benchmark_app", "throughput", b), find(rows, "benchmark_app", "latency", b)
        if sync and asyn:
            lines.append(f"- batch {b}: OpenVINO async / sync throughput = {asyn.images_per_s / sync.images_per_s:.2f}")
        if asyn and app_tp:
            lines.append(f"- batch {b}: ours async / benchmark_app throughput = {asyn.images_per_s / app_tp.images_per_s:.2f}")
        if sync and app_lat:
            lines.append(f"- batch {b}: ours sync / benchmark_app median latency = {sync.median_ms / app_lat.median_ms:.2f}")
    return lines


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = re.search(r"Model name:\s+(.+)", lscpu).group(1).strip()
    except (OSError, subprocess.CalledProcessError, AttributeError):
        model = platform.processor() or "unknown CPU"
    import onnxruntime
    import openvino

    from leanvision.runtime.engines.openvino import cpu_supports_bf16

    bf16 = cpu_supports_bf16(openvino.Core())
    return (f"{model}, {len(os.sched_getaffinity(0))} cores usable, bf16 {'yes' if bf16 else 'no'}; "
            f"OpenVINO {openvino.__version__.split('-')[0]}, ONNX Runtime {onnxruntime.__version__}; "
            f"{time.strftime('%Y-%m-%d')}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="model_card.json + model.onnx and/or model.xml")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per row")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before each row")
    parser.add_argument("--benchmark-app", type=Path, default=Path(sys.executable).with_name("benchmark_app"))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    card = ModelCard.load(args.model_dir)
    shape = (3, card.input.height, card.input.width)
    rng = np.random.default_rng(0)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        ir = ensure_ir(args.model_dir, Path(tmp))
        onnx = ensure_onnx(args.model_dir)
        with open_engine(ir) as eng:
            input_name = eng.input_name
        for b in args.batches:
            batch = rng.normal(size=(b, *shape)).astype(np.float32)
            rows += engine_rows(onnx, ir, batch, args.seconds, args.warmup)
            if args.benchmark_app.is_file():
                for hint in ("latency", "throughput"):
                    rows.append(benchmark_app_row(args.benchmark_app, ir, input_name, (b, *shape), hint, args.seconds))
        rows.append(predictor_row(ir, card, args.seconds, args.warmup))
    print(f"Model: {args.model_dir} ({card.name}, input {shape[1]}x{shape[2]}); {machine()}")
    print(f"Command: {' '.join(sys.argv)}\n")
    print(markdown(rows))
    print("\n" + "\n".join(ratios(rows, args.batches)))
    if not args.benchmark_app.is_file():
        print(f"\nbenchmark_app not found at {args.benchmark_app}: reference rows skipped")
    if args.json:
        atomic_write_text(args.json, json.dumps([dataclasses.asdict(r) for r in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
