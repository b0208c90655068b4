"""The accuracy x speed matrix: model x engine x precision x batch x in-flight requests.

For each cell: the task metric on a validation set, latency (median, p90, every sample),
throughput with the cell's requests in flight, peak resident memory, model size on disk,
and optionally the end-to-end images/s of the large-image pipeline over a folder of slides.

Every (model, engine, precision) combination runs in a fresh process, so its peak RSS is
its own (VmHWM) and nothing one engine allocated inflates the next. Within it, accuracy and
the slide run are measured once; latency and throughput once per (batch, requests) cell.
Timing goes through the `StagedPredictor` protocol (`submit` / `wait_all`), so any task's
predictor benchmarks the same way; the caller supplies the task's evaluation.

Classifiers add two dimensions, so that what test-time augmentation and ensembles cost in
images/s sits beside the accuracy they gain: `BenchOptions.tta` (each model also run with
flip TTA: two model rows per image) and `run_bench(..., ensemble=dirs)` (the first model and
`dirs` as one `runtime.classify.EnsemblePredictor`, the mean of their logits, one more set of
cells named after all its members, `a+b+c`). `variant_costs` sets each such cell against
the plain first model's.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.config import Config
from leanvision.core.errors import ConfigError, LeanVisionError
from leanvision.evaluation.scores import Entry

MODEL_FILES = ("model.xml", "model.bin", "model.onnx")


@dataclasses.dataclass(frozen=True)
class BenchOptions(Config):
    """What to sweep and for how long.

    Attributes:
        backends: engines to run each model on ("onnxruntime", "openvino"); an IR-only
            model directory runs on OpenVINO only.
        precisions: OpenVINO floating-point hints per cell ("fp32", "bf16"); bf16 on a CPU
            without it runs fp32 and says so (`engine_precision`). ONNX Runtime runs fp32.
        batches: images per inference call.
        requests: inference requests kept in flight for the throughput figure.
        seconds: timing window per cell (after `warmup` calls).
        warmup: untimed calls first (kernel selection, caches).
        threads: engine threads (None: the engine's default, all cores).
        isolate: run each (model, engine, precision) in a fresh process (true peak RSS).
        drop_border: the slide run's `drop_border` (S0: 400 px for 1600 px windows).
        tta: test-time augmentation modes per model ("none", "flip": classifiers only).
    """

    backends: tuple[str, ...] = ("onnxruntime", "openvino")
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1, 8)
    requests: tuple[int, ...] = (1, 4)
    seconds: float = 5.0
    warmup: int = 3
    threads: int | None = None
    isolate: bool = True
    drop_border: int = 0
    tta: tuple[str, ...] = ("none",)

    def __post_init__(self) -> None:
        if not self.backends or not self.batches or not self.requests or not self.precisions or not self.tta:
            raise ValueError("backends, precisions, batches, requests and tta need at least one value each")
        if set(self.tta) - {"none", "flip"}:
            raise ValueError(f"tta takes none and flip, got {', '.join(self.tta)}")
        if min(self.batches) < 1 or min(self.requests) < 1 or self.seconds <= 0:
            raise ValueError("batches and requests must be >= 1 and seconds > 0")


@dataclasses.dataclass(frozen=True)
class ValSet:
    """Validation images and how to score predictions on them (supplied by the caller).

    Attributes:
        images: image files, in the order `evaluate` expects predictions.
        evaluate: predictions (one per image) -> task metrics, e.g. {"map50": 0.91}.
        metric: the headline metric's key (e.g. "map50" or "mae").
        higher_is_better: direction of `metric`.
    """

    images: tuple[Path, ...]
    evaluate: Callable[[list[Any]], dict[str, float]]
    metric: str
    higher_is_better: bool = True


@dataclasses.dataclass
class Cell:
    """One measured combination (JSON-ready through `dataclasses.asdict`)."""

    model: str
    model_dir: str
    task: str
    model_precision: str
    backend: str
    precision_hint: str
    engine_precision: str
    batch: int
    requests: int
    latency_ms_median: float
    latency_ms_p90: float
    latency_ms: list[float]
    images_per_s: float
    peak_rss_mb: float
    model_mb: float
    metrics: dict[str, float]
    slides_per_s: float | None = None
    slide_seconds: float | None = None
    slide_peak_rss_mb: float | None = None
    note: str = ""
    tta: str = "none"
    members: list[str] = dataclasses.field(default_factory=list)  # an ensemble's model dirs; [] for one model

    @property
    def name(self) -> str:
        tta = "" if self.tta == "none" else f"/tta-{self.tta}"
        return f"{self.model}/{self.backend}/{self.precision_hint}/b{self.batch}/r{self.requests}{tta}"


def model_size_mb(model_dir: Path) -> float:
    """Size on disk of the model files in `model_dir` (weights and graph), MiB."""
    return sum((model_dir / f).stat().st_size for f in MODEL_FILES if (model_dir / f).exists()) / 2**20


def backends_for(model_dir: Path, wanted: Sequence[str]) -> list[str]:
    """The backends of `wanted` that can run `model_dir` (an IR runs on OpenVINO only)."""
    has_onnx = (model_dir / "model.onnx").exists()
    has_ir = (model_dir / "model.xml").exists()
    if not (has_onnx or has_ir):
        raise ConfigError("no model.onnx or model.xml in the model directory", path=model_dir)
    return [b for b in wanted if has_onnx or b == "openvino"]


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q)) if values else float("nan")


def _load_images(paths: Sequence[Path]) -> list[np.ndarray]:
    import cv2

    images = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise LeanVisionError("cannot read image", path=path)
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return images


def time_latency(predictor, prepared, *, warmup: int, seconds: float) -> list[float]:
    """Milliseconds per call with one request in flight (submit, then wait for it)."""
    done = threading.Event()

    def call() -> float:
        done.clear()
        start = time.perf_counter()
        predictor.submit(prepared, lambda _raw: done.set())
        predictor.wait_all()
        return (time.perf_counter() - start) * 1e3

    for _ in range(warmup):
        call()
    samples, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 3:
        samples.append(call())
    return samples


def time_throughput(predictor, prepared, *, requests: int, batch: int, seconds: float) -> float:
    """Images per second with `requests` calls kept in flight for `seconds`."""
    finished = []
    lock = threading.Lock()

    def on_done(_raw) -> None:
        with lock:
            finished.append(time.perf_counter())

    start = time.perf_counter()
    deadline = start + seconds
    submitted = 0
    while time.perf_counter() < deadline:
        # submit() blocks while every request is busy: that is the back-pressure we want.
        predictor.submit(prepared, on_done)
        submitted += 1
    predictor.wait_all()
    elapsed = max(finished) - start if finished else float("nan")
    return submitted * batch / elapsed


def _predict_all(predictor, images: Sequence[np.ndarray], batch: int) -> list[Any]:
    results: list[Any] = []
    for i in range(0, len(images), batch):
        results.extend(predictor(list(images[i : i + batch])))
    return results


def open_predictor(model_dir: Path, *, backend: str, precision: str, threads: int | None,
                   requests: int | None, throughput: bool = False, tta: str = "none", ensemble: Sequence[Path] = ()):
    """A runtime predictor for one bench cell (the default `predictor_factory`); with
    `ensemble`, `model_dir` and those directories as one `EnsemblePredictor`."""
    from leanvision.runtime import EngineOptions, PerformanceHint, load_ensemble, load_predictor

    performance = PerformanceHint.THROUGHPUT if throughput or (requests or 1) > 1 else PerformanceHint.LATENCY
    options = EngineOptions(threads=threads, num_requests=requests, precision=precision, performance=performance)
    overrides = {"tta": tta} if tta != "none" else None
    if ensemble:
        return load_ensemble([model_dir, *ensemble], backend=backend, options=options, overrides=overrides)
    return load_predictor(model_dir, backend=backend, options=options, overrides=overrides)


def run_slides(model_dir: Path, backend: str, precision: str, slides: Sequence[Path], *,
               threads: int | None = None, drop_border: int = 0, tta: str = "none",
               ensemble: Sequence[Path] = ()) -> tuple[float, float]:
    """(seconds, peak RSS MB) of the large-image pipeline over `slides` (default settings:
    the card's window, THROUGHPUT hint, the engine's optimal requests)."""
    from leanvision.largeimage import PipelineOptions, TilingOptions, run_pipeline

    predictor = open_predictor(model_dir, backend=backend, precision=precision, threads=threads,
                               requests=None, throughput=True, tta=tta, ensemble=ensemble)
    options = PipelineOptions(tiling=TilingOptions(drop_border=drop_border))
    summary = run_pipeline(predictor, list(slides), options=options)
    if summary.failed:
        first = summary.failed[0]
        raise LeanVisionError(f"slide failed in the pipeline: {first.reason}", path=first.path)
    return summary.seconds, summary.peak_rss_mb


@dataclasses.dataclass(frozen=True)
class _Job:
    """Everything one isolated (model, backend, precision) run needs; picklable."""

    model_dir: Path
    backend: str
    precision: str
    options: BenchOptions
    val: ValSet | None
    slides: tuple[Path, ...]
    tta: str = "none"
    ensemble: tuple[Path, ...] = ()  # the other members of an ensemble with `model_dir`

    @property
    def model_name(self) -> str:
        return "+".join(d.name for d in (self.model_dir, *self.ensemble))

    def open(self, requests: int | None) -> Any:
        opts = self.options
        return open_predictor(self.model_dir, backend=self.backend, precision=self.precision, threads=opts.threads,
                              requests=requests, tta=self.tta, ensemble=self.ensemble)


def _run_job(job: _Job) -> list[dict]:
    """Measure every (batch, requests) cell of one (model, backend, precision)."""
    from leanvision.core.resources import peak_rss_mb

    opts = job.options
    base = job.open(1)
    card = base.card
    metrics = {}
    if job.val is not None:
        val_images = _load_images(job.val.images)
        metrics = job.val.evaluate(_predict_all(base, val_images, max(opts.batches)))
    slide_seconds = slide_rss = None
    if job.slides:
        slide_seconds, slide_rss = run_slides(job.model_dir, job.backend, job.precision, job.slides,
                                              threads=opts.threads, drop_border=opts.drop_border, tta=job.tta,
                                              ensemble=job.ensemble)
    engine_precision = str(getattr(getattr(base, "engine", None), "precision", job.precision))
    sample = _load_images(job.val.images[:1])[0] if job.val is not None else None
    cells = []
    for batch in opts.batches:
        for requests in opts.requests:
            predictor = base if requests == 1 else job.open(requests)
            image = sample if sample is not None else np.zeros((card.input.height, card.input.width, 3), np.uint8)
            prepared = predictor.preprocess([image] * batch)
            latency = time_latency(predictor, prepared, warmup=opts.warmup, seconds=opts.seconds / 2)
            throughput = time_throughput(predictor, prepared, requests=requests, batch=batch, seconds=opts.seconds / 2)
            cells.append(dataclasses.asdict(Cell(
                model=job.model_name, model_dir=str(job.model_dir), task=str(card.task),
                model_precision=str(card.precision), backend=job.backend, precision_hint=job.precision,
                engine_precision=engine_precision, batch=batch, requests=requests,
                latency_ms_median=statistics.median(latency), latency_ms_p90=_percentile(latency, 90),
                latency_ms=[round(v, 3) for v in latency], images_per_s=throughput, peak_rss_mb=0.0,
                model_mb=sum(model_size_mb(d) for d in (job.model_dir, *job.ensemble)), metrics=dict(metrics),
                slides_per_s=(len(job.slides) / slide_seconds) if slide_seconds else None,
                slide_seconds=slide_seconds, slide_peak_rss_mb=slide_rss, tta=job.tta,
                members=[str(d) for d in (job.model_dir, *job.ensemble)] if job.ensemble else [],
            )))
            if predictor is not base and hasattr(predictor, "close"):
                predictor.close()
    rss = peak_rss_mb()
    for cell in cells:
        cell["peak_rss_mb"] = rss
    return cells


def _job_main(job: _Job, conn) -> None:
    try:
        conn.send(("ok", _run_job(job)))
    except BaseException as exc:  # reported in the parent as one line
        conn.send(("error", exc if isinstance(exc, LeanVisionError) else f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _isolated(job: _Job) -> list[dict]:
    """Run `job` in a fresh (non-daemon: the slide pipeline starts its own readers) process."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_job_main, args=(job, child), name="leanvision-bench")
    process.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:
        process.join()
        raise LeanVisionError(f"benchmark process died (exit code {process.exitcode})", path=job.model_dir) from None
    process.join()
    if status == "error":
        raise payload if isinstance(payload, LeanVisionError) else LeanVisionError(payload, path=job.model_dir)
    return payload


def run_bench(
    model_dirs: Sequence[Path],
    *,
    val: ValSet | None = None,
    slides: Sequence[Path] = (),
    options: BenchOptions = BenchOptions(),
    progress: Callable[[str, int, int], None] | None = None,
    ensemble: Sequence[Path] = (),
) -> list[Cell]:
    """Measure the matrix. Returns one `Cell` per model x backend x precision x batch x
    requests (x TTA mode: `options.tta`), and with `ensemble` as many for the ensemble.

    Args:
        model_dirs: exported model directories (model file + model_card.json).
        val: validation images and their scoring (picklable: it runs in the isolated
            processes); None skips accuracy.
        slides: large images for the end-to-end pipeline figure (slides/s).
        progress: called as `progress(label, done, total)`.
        ensemble: classifier directories averaged with the first model (its cells are
            named after every member, `a+b+c`); on the backends every member can run.
    """
    groups = [(Path(d), ()) for d in model_dirs]
    if ensemble:
        groups.append((Path(model_dirs[0]), tuple(Path(d) for d in ensemble)))
    jobs = [
        _Job(first, backend, precision, options, val, tuple(slides), tta, rest)
        for first, rest in groups
        for backend in _common_backends((first, *rest), options.backends)
        for precision in (options.precisions if backend == "openvino" else ("fp32",))
        for tta in options.tta
    ]
    cells: list[Cell] = []
    for done, job in enumerate(jobs):
        if progress is not None:
            tta = "" if job.tta == "none" else f" tta {job.tta}"
            progress(f"{job.model_name} {job.backend} {job.precision}{tta}", done, len(jobs))
        rows = _isolated(job) if options.isolate else _run_job(job)
        cells.extend(Cell(**row) for row in rows)
    if progress is not None:
        progress("done", len(jobs), len(jobs))
    return cells


def _common_backends(model_dirs: Sequence[Path], wanted: Sequence[str]) -> list[str]:
    """The backends of `wanted` every directory can run (`backends_for`), in `wanted`'s order."""
    usable = [set(backends_for(d, wanted)) for d in model_dirs]
    return [b for b in wanted if all(b in u for u in usable)]


def variant_costs(cells: Sequence[Cell], metric: str) -> list[dict[str, Any]]:
    """Each TTA or ensemble cell against its base: the same engine, precision, batch and
    requests of its first model without TTA. What the variant gains in `metric` (variant
    minus base) and what it costs in images/s (variant / base)."""
    base = {(c.model_dir, c.backend, c.precision_hint, c.batch, c.requests): c
            for c in cells if c.tta == "none" and not c.members}
    rows = []
    for c in cells:
        plain = base.get((c.model_dir, c.backend, c.precision_hint, c.batch, c.requests))
        if plain is None or plain is c or metric not in c.metrics or metric not in plain.metrics:
            continue
        rows.append({"cell": c.name, "base": plain.name, "gain": c.metrics[metric] - plain.metrics[metric],
                     "speed": c.images_per_s / plain.images_per_s if plain.images_per_s else float("nan"),
                     "images_per_s": c.images_per_s, "base_images_per_s": plain.images_per_s})
    return rows


def score_entries(cells, *, metric: str, slides: int):
    """Score entries from cells: the metric, throughput and per-image time of each."""
    entries = []
    for c in cells:
        seconds_per_image = (c.slide_seconds / slides) if c.slide_seconds else 1.0 / c.images_per_s
        values = {**c.metrics, "images_per_s": c.images_per_s, "seconds_per_image": seconds_per_image,
                  "images": float(slides or 1), "seconds": seconds_per_image * (slides or 1)}
        entries.append(Entry(c.name, {k: float(v) for k, v in values.items() if v is not None}))
    return entries
