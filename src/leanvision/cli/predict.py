"""`leanvision predict MODEL_DIR INPUTS... --out DIR`: detections, or counts (a counting
model), for images of any size.

The work is `leanvision.largeimage.run_pipeline`; this command parses options, builds the
predictor factory (`functools.partial(load_predictor, ...)`, picklable for Ray actors),
draws the progress bar and prints the summary. `--out r.json` with a single image writes
that image's JSON alone (the ordinary-image form). S3's counting run:

    leanvision predict exported/csrnet crowds/ --out counts --fit-grid 2x2 --batch 4

Exit codes (`ui.finish_batch`): 0 every image done; 1 some images failed (skipped, counted,
named in a one-line account on stderr and listed in summary.json); 2 none done.

Classifiers (each image seen whole) take `--tta flip` and `--ensemble MODEL_DIR` (repeatable:
the members' logits averaged, `runtime.classify.load_ensemble`); another task's model with
either is a one-line error, as detection's `--conf` / `--iou` / `--max-det` on another task.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from leanvision.cli.ui import console, finish_batch, json_option, json_result, out
from leanvision.core import ConfigError, DataError, ModelCard, ModelError, Task
from leanvision.core.errors import plural
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
from leanvision.runtime.classify import Tta
from leanvision.runtime.engines.base import Backend


def _fit_grid(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise ConfigError(f"--fit-grid takes ROWSxCOLS, e.g. 2x2, got {text!r}")
    return int(match[1]), int(match[2])


# --conf, --iou, --max-det -> `runtime.detect.PostprocessOptions` fields they override.
_POSTPROCESS_FLAGS = {"conf": ("--conf", "score_threshold"), "iou": ("--iou", "iou_threshold"),
                      "max_det": ("--max-det", "max_detections")}


def _overrides(card: ModelCard, model_dir: Path, **flags: float | int | None) -> dict[str, float | int]:
    """The post-processing overrides the flags ask for; a ConfigError on a model they do not fit.

    The flags are detection post-processing (`runtime.detect.PostprocessOptions`), so they
    name their task: another task's model has no score threshold, NMS or detection cap.
    """
    given = {name: value for name, value in flags.items() if value is not None}
    if given and card.task is not Task.DETECT:
        named = ", ".join(_POSTPROCESS_FLAGS[name][0] for name in given)
        raise ConfigError(f"{named}: detection post-processing; '{card.name}' is a model of task "
                          f"{card.task.value}, which has none", path=model_dir)
    return {_POSTPROCESS_FLAGS[name][1]: value for name, value in given.items()}


def refuse_classifier_flags(card: ModelCard, model_dir: Path, given: list[str]) -> None:
    """ConfigError when classifier-only flags (`given`: --tta, --ensemble) are used with a
    model of another task (they average class logits); `predict` and `bench` share it."""
    if given and card.task is not Task.CLASSIFY:
        raise ConfigError(f"{', '.join(given)}: classifiers only (class logits averaged); '{card.name}' is a model "
                          f"of task {card.task.value}", path=model_dir)


def _classify_overrides(card: ModelCard, model_dir: Path, tta: Tta | None, ensemble: list[Path]) -> dict[str, str]:
    """The classifier's override `--tta` asks for; a ConfigError when --tta or --ensemble is
    given for a model of another task."""
    refuse_classifier_flags(card, model_dir, [flag for flag, value in (("--tta", tta is not None),
                                                                        ("--ensemble", bool(ensemble))) if value])
    return {"tta": tta.value} if tta is not None and tta is not Tta.NONE else {}


def _factory(model_dir: Path, backend: Backend | None, requests: int | None, *, tta: Tta | None = None,
             ensemble: list[Path] | None = None, **flags: float | int | None) -> functools.partial:
    """A picklable predictor factory; the card and the flags are checked here, before any work
    starts. With --ensemble: `runtime.classify.load_ensemble` over MODEL_DIR and the members."""
    from leanvision.runtime import EngineOptions, PerformanceHint, load_ensemble, load_predictor
    from leanvision.runtime.classify import check_members

    ensemble = list(ensemble or [])
    for directory in (model_dir, *ensemble):
        if not directory.is_dir():
            raise ModelError("model directory not found", path=directory)
    card = ModelCard.load(model_dir)  # a missing or unreadable card: one-line ModelError now
    overrides = {**_overrides(card, model_dir, **flags), **_classify_overrides(card, model_dir, tta, ensemble)}
    # THROUGHPUT: several streams and requests, what an async pipeline feeds (measured in
    # docs/large-images.md); num_requests None keeps the engine's optimal number.
    engine = EngineOptions(num_requests=requests, performance=PerformanceHint.THROUGHPUT)
    if ensemble:
        check_members([card, *(ModelCard.load(d) for d in ensemble)], [model_dir, *ensemble])
        return functools.partial(load_ensemble, [model_dir, *ensemble], backend=backend, options=engine,
                                 overrides=overrides or None)
    return functools.partial(load_predictor, model_dir, backend=backend, options=engine, overrides=overrides or None)


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
    out.print(f"{plural(summary.images, 'image')} ({len(summary.failed)} failed), {plural(summary.tiles, 'tile')} in "
              f"{summary.seconds:.1f} s: {summary.images_per_s:.2f} images/s, {summary.tiles_per_s:.1f} tiles/s, "
              f"peak RSS {summary.peak_rss_mb:.0f} MB")
    stages = ", ".join(f"{k} {summary.stage_seconds[k]:.1f}/{summary.stage_cpu_seconds[k]:.1f}"
                       for k in summary.stage_seconds)
    out.print(f"stage seconds wall/CPU (summed over workers): {stages}", highlight=False)
    for failure in summary.failed:
        out.print(f"failed: {failure.path}: {failure.reason}", markup=False, highlight=False)
    if where is not None:
        out.print(f"results: {where}", markup=False, highlight=False)


def _single_image(factory: functools.partial, inputs: list[str], target: Path, options: PipelineOptions
                  ) -> PipelineSummary:
    """The ordinary-image form: one image in, its JSON written to `target`."""
    from leanvision.largeimage.inputs import expand_inputs
    from leanvision.largeimage.pipeline.outputs import (
        ClassifyResult,
        CountResult,
        write_classify_json,
        write_count_json,
        write_json,
    )

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
        elif isinstance(result, ClassifyResult):
            write_classify_json(target, result)
        else:
            write_json(target, result, predictor.card.class_names)
    finally:
        predictor.close()
    if isinstance(result, CountResult):
        found = f"count {result.count:.1f}"
    elif isinstance(result, ClassifyResult):
        found = f"{result.probs.name} ({result.probs.score:.3f})"
    else:
        found = plural(len(result.detections), "detection")
    out.print(f"{found}: {target}", markup=False, highlight=False)
    return summary


def predict(
    model_dir: Path = typer.Argument(..., help="Exported model directory: model.xml or model.onnx, and model_card.json."),
    inputs: list[str] = typer.Argument(..., help="Images, folders, globs ('slides/*.tif') or .txt lists of paths."),
    out_path: Path = typer.Option(..., "--out", help="Output folder; or FILE.json for a single image."),
    backend: Backend | None = typer.Option(None, "--backend", help="Engine (default: by model file: model.xml runs on openvino, model.onnx on onnxruntime)."),
    conf: float | None = typer.Option(None, "--conf", min=0.0, max=1.0, help="Detection: score threshold, 0-1 (default: the model card's)."),
    iou: float | None = typer.Option(None, "--iou", min=0.0, max=1.0, help="Detection: NMS IoU threshold, 0-1; boxes overlapping a better one by more are dropped (default: the model card's)."),
    max_det: int | None = typer.Option(None, "--max-det", min=1, help="Detection: most detections kept per image, the highest scores, once its tiles are merged (each tile is capped too). Default: the model card's cap, per tile."),
    window: int | None = typer.Option(None, "--window", min=1, help="Window width in image pixels, resized to the model input (S0: 1600 for an 800 model). Default: the card's window, input / scale."),
    overlap: int = typer.Option(0, "--overlap", min=0, help="Pixels neighbouring windows share."),
    drop_border: int = typer.Option(0, "--drop-border", min=0, help="Leave up to this many border pixels a side unread when that saves windows (S0)."),
    fit_grid: str | None = typer.Option(None, "--fit-grid", help="ROWSxCOLS: resize each image to exactly this many model inputs (S3), e.g. 2x2."),
    readers: int = typer.Option(DEFAULT_READERS, "--readers", min=1, help="Reader processes."),
    batch: int = typer.Option(DEFAULT_BATCH, "--batch", min=1, help="Tiles per inference call."),
    requests: int | None = typer.Option(None, "--requests", min=1, help="Inference requests in flight (default: the engine's optimal number)."),
    reader: ReaderKind | None = typer.Option(None, "--reader", help="Force a reader (default: by file type)."),
    merge: MergeMethod = typer.Option(MergeMethod.NMS, "--merge", help="How detections of neighbouring tiles are merged."),
    preview: bool = typer.Option(False, "--preview", help="Also write <stem>.png: the image downscaled with its boxes (counting: its density heat map)."),
    density: bool = typer.Option(False, "--density", help="Counting models: also write <stem>.npy, the stitched density map."),
    tta: Tta | None = typer.Option(None, "--tta", help="Classifiers: flip averages the logits of each image and its mirror (two model rows per image). Default none."),
    ensemble: list[Path] = typer.Option([], "--ensemble", help="Classifiers: another exported model directory whose logits are averaged with MODEL_DIR's (after --tta). Repeat for several; same classes and input spec."),
    engine: EngineKind = typer.Option(EngineKind.LOCAL, "--engine", help="local, or ray to run on a Ray cluster."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster address (default: start Ray here)."),
    json_out: Path | None = json_option("the run's summary (summary.json's fields)"),
) -> None:
    """Detect or count objects in images of any size: tiles read in parallel, async batched inference, merged results.

    Exit code 1 when some images failed (they are named on stderr and in summary.json), 2 when none was done.
    """
    options = PipelineOptions.from_dict({
        "tiling": {"window": window, "overlap": overlap, "drop_border": drop_border, "fit_grid": _fit_grid(fit_grid)},
        "merge": MergeOptions(method=merge, max_detections=max_det), "reader": reader, "readers": readers, "batch": batch,
        "requests": requests, "preview": preview, "density": density, "engine": engine,
        "ray": RayOptions(address=ray_address),
    })
    factory = _factory(model_dir, backend, requests, tta=tta, ensemble=ensemble, conf=conf, iou=iou, max_det=max_det)
    with json_result(json_out) as emit:
        if out_path.suffix.lower() == ".json":
            if engine is not EngineKind.LOCAL:
                raise ConfigError("--out FILE.json (one image) runs locally; give a folder to use --engine ray")
            summary = _single_image(factory, inputs, out_path, options)
            emit({"out": str(out_path), **summary.to_dict()})
            return
        bar = _Bar()
        try:
            with bar.bar:
                summary = run_pipeline(factory, inputs, options=options, out_dir=out_path, progress=bar)
        except PipelineInterrupted as stop:
            _print_summary(stop.summary, out_path)
            raise
        _print_summary(summary, out_path)
        emit({"out": str(out_path), **summary.to_dict()})
    finish_batch([(f.path, f.reason) for f in summary.failed], done=summary.images, noun="image",
                 total=summary.images + len(summary.failed), listed_in=out_path / "summary.json")
