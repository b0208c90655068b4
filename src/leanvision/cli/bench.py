"""`leanvision bench`: the accuracy x speed matrix of exported models, with a composite score."""

from __future__ import annotations

from pathlib import Path

import typer

from leanvision.cli.ui import out, progress_bar
from leanvision.core import ConfigError, DataError, ModelCard, Task


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got '{text}'") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{option} needs positive integers, got '{text}'")
    return values


def _names(text: str, option: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ConfigError(f"{option}: '{bad[0] if bad else text}' is not one of {', '.join(allowed)}")
    return values


def val_set(data: Path, card: ModelCard):
    """The validation images and their scorer for the card's task."""
    from leanvision.data.formats import CountingSet, read_dataset, read_detection
    from leanvision.evaluation.benchmark import ValSet

    if card.task is Task.DETECT:
        from leanvision.evaluation.detection import DetectionScorer

        dataset = read_detection(data)
        if not dataset.images:
            raise DataError("the validation set has no images", path=data)
        if tuple(dataset.classes) != tuple(card.class_names):
            raise DataError(f"validation classes {list(dataset.classes)} differ from the model's {list(card.class_names)}", path=data)
        scorer = DetectionScorer(tuple(r.targets for r in dataset.images),
                                 tuple((r.width, r.height) for r in dataset.images), tuple(card.class_names))
        return ValSet(tuple(dataset.image_path(r) for r in dataset.images), scorer, "map50", True)
    if card.task is Task.COUNT:
        from leanvision.evaluation.counting import CountingScorer

        dataset = read_dataset(data)
        if not isinstance(dataset, CountingSet) or not dataset.images:
            raise DataError("expected a counting set (images + points) with images", path=data)
        scorer = CountingScorer(tuple(float(len(r.points)) for r in dataset.images))
        return ValSet(tuple(dataset.image_root / r.file_name for r in dataset.images), scorer, "mae", False)
    raise ConfigError(f"bench has no metric for task '{card.task}' yet")


def score_entries(cells, *, metric: str, slides: int):
    """Score entries from cells: the metric, throughput and per-image time of each."""
    from leanvision.evaluation.scores import Entry

    entries = []
    for c in cells:
        seconds_per_image = (c.slide_seconds / slides) if c.slide_seconds else 1.0 / c.images_per_s
        values = {**c.metrics, "images_per_s": c.images_per_s, "seconds_per_image": seconds_per_image,
                  "images": float(slides or 1), "seconds": seconds_per_image * (slides or 1)}
        entries.append(Entry(c.name, {k: float(v) for k, v in values.items() if v is not None}))
    return entries


def _reference(cells, metric: str, given: str | None) -> str:
    if given:
        return given
    fp32 = [c for c in cells if c.model_precision == "fp32"]
    if not fp32:
        raise ConfigError("mlperf-gate needs an FP32 reference: pass --reference CELL or bench an FP32 model")
    return fp32[0].name


def machine_meta() -> dict[str, str]:
    """The machine as reports record it: CPU, cores, ISA, versions, date."""
    import datetime
    import platform

    from leanvision import __version__
    from leanvision.runtime.hardware import detect_cpu

    cpu = detect_cpu()
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": cpu.summary(), "python": platform.python_version(), "leanvision": __version__}


def bench(
    models: list[Path] = typer.Argument(..., help="Exported model directories (model file + model_card.json)."),
    data: Path = typer.Option(..., "--data", help="Validation set with labels (the task's format)."),
    out_dir: Path = typer.Option(..., "--out", help="Where bench.json, bench.md and bench.html go."),
    slides: Path | None = typer.Option(None, "--slides", help="Large images: adds end-to-end slides/s through the pipeline."),
    backends: str = typer.Option("onnxruntime,openvino", "--backends", help="Engines, comma-separated."),
    precisions: str = typer.Option("fp32", "--precisions", help="OpenVINO compute hints: fp32, bf16."),
    batches: str = typer.Option("1,8", "--batches", help="Batch sizes, comma-separated."),
    requests: str = typer.Option("1,4", "--requests", help="In-flight requests for throughput, comma-separated."),
    seconds: float = typer.Option(5.0, "--seconds", min=0.1, help="Timing window per cell."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="Engine threads (default: all cores)."),
    drop_border: int = typer.Option(0, "--drop-border", min=0, help="Slide runs: S0's drop border in px."),
    score_name: str | None = typer.Option(None, "--score", help="tianchi, s3, mlperf-gate or pareto."),
    reference: str | None = typer.Option(None, "--reference", help="mlperf-gate: the FP32 reference cell name."),
) -> None:
    """Measure accuracy and speed of every model x engine x precision x batch x requests."""
    from leanvision.evaluation.benchmark import BenchOptions, run_bench
    from leanvision.evaluation.report import write_bench_report
    from leanvision.evaluation.scores import score
    from leanvision.largeimage.inputs import expand_inputs

    cards = [ModelCard.load(m) for m in models]
    if len({c.task for c in cards}) > 1:
        raise ConfigError("bench compares models of one task at a time")
    options = BenchOptions(
        backends=_names(backends, "--backends", ("onnxruntime", "openvino")),
        precisions=_names(precisions, "--precisions", ("fp32", "bf16")),
        batches=_ints(batches, "--batches"), requests=_ints(requests, "--requests"),
        seconds=seconds, threads=threads, drop_border=drop_border)
    val = val_set(data, cards[0])
    slide_paths = expand_inputs([slides]) if slides is not None else []
    with progress_bar("bench") as update:
        cells = run_bench(models, val=val, slides=slide_paths, options=options,
                          progress=lambda label, done, total: update(done, total, label))
    scored = []
    if score_name:
        keys = {"reference": _reference(cells, val.metric, reference)} if score_name == "mlperf-gate" else {}
        accuracy_keys = {} if score_name == "s3" else {"accuracy": val.metric}
        scored = score(score_name, score_entries(cells, metric=val.metric, slides=len(slide_paths)),
                       **accuracy_keys, **keys)
    paths = write_bench_report(cells, out_dir, metric=val.metric, higher_is_better=val.higher_is_better,
                               meta=machine_meta(), scored=scored, score_name=score_name or "")
    from leanvision.evaluation.report import markdown_table, summary_rows

    out.print(markdown_table(summary_rows(cells, val.metric)), markup=False, highlight=False)
    out.print(f"wrote {paths['json']}, {paths['md']}, {paths['html']}")
