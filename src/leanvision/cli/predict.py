"""`leanvision predict MODEL_DIR INPUTS... --out DIR`: detections, or counts (a counting
model), for images of any size.

The work is `leanvision.largeimage.run_pipeline`; this command parses options, builds the
predictor factory (`functools.partial(load_predictor, ...)`, picklable for Ray actors),
draws the progress bar and prints the summary. `--out r.json` with a single image writes
that image's JSON alone (the ordinary-image form). S3's counting run:

    leanvision predict exported/csrnet crowds/ --out counts --fit-grid 2x2 --batch 4
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from leanvision.cli.ui import console, out
from leanvision.core import ConfigError, DataError, ModelCard, ModelError
from leanvision.largeimage.merge import MergeMethod, MergeOptions
from leanvision.largeimage.pipeline import (
    EngineKind,
    PipelineInterrupted,
    PipelineOptions,
    PipelineSummary,
    ProgressInfo,
    RayOptions,
    run_pipeline,
)
from leanvision.largeimage.pipeline.options import DEFAULT_BATCH, DEFAULT_READERS
from leanvision.largeimage.readers import ReaderKind


def _fit_grid(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise ConfigError(f"--fit-grid takes ROWSxCOLS, e.g. 2x2, got {text!r}")
    return int(match[1]), int(match[2])


def _reader(text: str | None) -> ReaderKind | None:
    try:
        return None if text is None else ReaderKind(text)
    except ValueError:
        raise ConfigError(f"--reader must be one of {', '.join(k.value for k in ReaderKind)}, got {text!r}") from None


def _factory(model_dir: Path, backend: str | None, requests: int | None) -> functools.partial:
    """A picklable predictor factory; the card is checked here, before any work starts."""
    from leanvision.runtime import EngineOptions, PerformanceHint, load_predictor

    if not model_dir.is_dir():
        raise ModelError("model directory not found", path=model_dir)
    ModelCard.load(model_dir)  # a missing or unreadable card: one-line ModelError now
    # THROUGHPUT: several streams and requests, what an async pipeline feeds (measured in
    # docs/large-images.md); num_requests None keeps the engine's optimal number.
    engine = EngineOptions(num_requests=requests, performance=PerformanceHint.THROUGHPUT)
    return functools.partial(load_predictor, model_dir, backend=backend, options=engine)


class _Bar:
    """A rich progress bar: images done of total, tiles and their rate, elapsed, ETA."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("predict"), BarColumn(), TextColumn("{task.completed}/{task.total} images"),
            TextColumn("{task.fields[tiles]} tiles, {task.fields[rate]:.1f} tiles/s"),
            TextColumn("{task.fields[failed]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=True, disable=not console.is_terminal,
        )
        self.task = self.bar.add_task("predict", total=None, tiles=0, rate=0.0, failed="")

    def __call__(self, info: ProgressInfo) -> None:
        failed = f"{info.images_failed} failed" if info.images_failed else ""
        self.bar.update(self.task, completed=info.images_done + info.images_failed, total=info.images_total,
                        tiles=info.tiles_done, rate=info.tiles_done / max(info.seconds, 1e-9), failed=failed)


def _print_summary(summary: PipelineSummary, where: Path | None) -> None:
    out.print(f"{summary.images} images ({len(summary.failed)} failed), {summary.tiles} tiles in "
              f"{summary.seconds:.1f} s: {summary.images_per_s:.2f} images/s, {summary.tiles_per_s:.1f} tiles/s, "
              f"peak RSS {summary.peak_rss_mb:.0f} MB")
    stages = ", ".join(f"{k} {summary.stage_seconds[k]:.1f}/{summary.stage_cpu_seconds[k]:.1f}"
                       for k in summary.stage_seconds)
    out.print(f"stage seconds wall/CPU (summed over workers): {stages}", highlight=False)
    for failure in summary.failed:
        out.print(f"failed: {failure.path}: {failure.reason}", markup=False, highlight=False)
    if where is not None:
        out.print(f"results: {where}", markup=False, highlight=False)


def _single_image(factory: functools.partial, inputs: list[str], target: Path, options: PipelineOptions) -> None:
    """The ordinary-image form: one image in, its JSON written to `target`."""
    from leanvision.largeimage.inputs import expand_inputs
    from leanvision.largeimage.pipeline.outputs import CountResult, write_count_json, write_json

    paths = expand_inputs(inputs)
    if len(paths) != 1:
        raise ConfigError(f"--out {target.name} takes exactly one image, got {len(paths)}; give a folder for several")
    predictor = factory()
    try:
        summary = run_pipeline(predictor, paths, options=options, out_dir=None)
        if summary.failed:
            raise DataError(summary.failed[0].reason, path=summary.failed[0].path)
        result = summary.results[paths[0]]
        if isinstance(result, CountResult):
            write_count_json(target, result)
        else:
            write_json(target, result, predictor.card.class_names)
    finally:
        predictor.close()
    found = f"count {result.count:.1f}" if isinstance(result, CountResult) else f"{len(result.detections)} detections"
    out.print(f"{found}: {target}", markup=False, highlight=False)


def predict(
    model_dir: Path = typer.Argument(..., help="Exported model directory: model.xml or model.onnx, and model_card.json."),
    inputs: list[str] = typer.Argument(..., help="Images, folders, globs ('slides/*.tif') or .txt lists of paths."),
    out_path: Path = typer.Option(..., "--out", help="Output folder; or FILE.json for a single image."),
    backend: str | None = typer.Option(None, "--backend", help="openvino or onnxruntime (default: by model file)."),
    window: int | None = typer.Option(None, "--window", min=1, help="Window width in image pixels, resized to the model input (S0: 1600 for an 800 model). Default: the card's window, input / scale."),
    overlap: int = typer.Option(0, "--overlap", min=0, help="Pixels neighbouring windows share."),
    drop_border: int = typer.Option(0, "--drop-border", min=0, help="Leave up to this many border pixels a side unread when that saves windows (S0)."),
    fit_grid: str | None = typer.Option(None, "--fit-grid", help="ROWSxCOLS: resize each image to exactly this many model inputs (S3), e.g. 2x2."),
    readers: int = typer.Option(DEFAULT_READERS, "--readers", min=1, help="Reader processes."),
    batch: int = typer.Option(DEFAULT_BATCH, "--batch", min=1, help="Tiles per inference call."),
    requests: int | None = typer.Option(None, "--requests", min=1, help="Inference requests in flight (default: the engine's optimal number)."),
    reader: str | None = typer.Option(None, "--reader", help="Force a reader: simplejpeg, tifffile, openslide, pyvips, rasterio, opencv, pillow."),
    merge: MergeMethod = typer.Option(MergeMethod.NMS, "--merge", help="How detections of neighbouring tiles are merged."),
    preview: bool = typer.Option(False, "--preview", help="Also write <stem>.png: the image downscaled with its boxes (counting: its density heat map)."),
    density: bool = typer.Option(False, "--density", help="Counting models: also write <stem>.npy, the stitched density map."),
    engine: EngineKind = typer.Option(EngineKind.LOCAL, "--engine", help="local, or ray to run on a Ray cluster."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster address (default: start Ray here)."),
) -> None:
    """Detect or count objects in images of any size: tiles read in parallel, async batched inference, merged results."""
    options = PipelineOptions.from_dict({
        "tiling": {"window": window, "overlap": overlap, "drop_border": drop_border, "fit_grid": _fit_grid(fit_grid)},
        "merge": MergeOptions(method=merge), "reader": _reader(reader), "readers": readers, "batch": batch,
        "requests": requests, "preview": preview, "density": density, "engine": engine,
        "ray": RayOptions(address=ray_address),
    })
    factory = _factory(model_dir, backend, requests)
    if out_path.suffix.lower() == ".json":
        if engine is not EngineKind.LOCAL:
            raise ConfigError("--out FILE.json (one image) runs locally; give a folder to use --engine ray")
        _single_image(factory, inputs, out_path, options)
        return
    bar = _Bar()
    try:
        with bar.bar:
            summary = run_pipeline(factory, inputs, options=options, out_dir=out_path, progress=bar)
    except PipelineInterrupted as stop:
        _print_summary(stop.summary, out_path)
        raise
    _print_summary(summary, out_path)
