"""`leanvision bench`: the accuracy x speed matrix of exported models, with a composite score.

Exit codes: 0; 1 when labels of the validation set were left out (a label for a missing
image, points outside their image: named in a one-line account on stderr), the matrix
measured on the rest; 2 on bad input. An image that does not decode or a slide that fails
in the pipeline is an error (exit 2), not a skip: cells measured on different image sets
would not compare.

Classifiers: `--tta none,flip` benches each model with and without flip TTA, `--ensemble DIR`
(repeatable) the first model and those directories as one ensemble (mean logits); each such
cell's top-1 gain and images/s cost against the plain first model is printed under the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from leanvision.cli.ui import finish_batch, json_option, json_result, out, progress_bar
from leanvision.core import ConfigError, ModelCard
from leanvision.evaluation.scores import ScoreKind


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


def _reference(cells, metric: str, given: str | None) -> str:
    if given:
        return given
    fp32 = [c for c in cells if c.model_precision == "fp32"]
    if not fp32:
        raise ConfigError("mlperf-gate needs an FP32 reference: pass --reference CELL or bench an FP32 model")
    return fp32[0].name


def _check_classify_options(card: ModelCard, model_dir: Path, tta: tuple[str, ...], ensemble: list[Path]) -> None:
    """--tta flip and --ensemble are for classifiers; ensemble members must fit the first model."""
    from leanvision.cli.predict import refuse_classifier_flags

    refuse_classifier_flags(card, model_dir, [flag for flag, used in (("--tta flip", "flip" in tta),
                                                                       ("--ensemble", bool(ensemble))) if used])
    if ensemble:
        from leanvision.runtime.classify import check_members

        check_members([card, *(ModelCard.load(d) for d in ensemble)], [model_dir, *ensemble])


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
    score_name: ScoreKind | None = typer.Option(None, "--score", help="A composite score of the cells (default: none)."),
    reference: str | None = typer.Option(None, "--reference", help="mlperf-gate: the FP32 reference cell name."),
    tta: str = typer.Option("none", "--tta", help="Classifiers: TTA modes, comma-separated: none, flip (each image and its mirror, logits averaged)."),
    ensemble: list[Path] = typer.Option([], "--ensemble", help="Classifiers: a model directory averaged with the first MODEL (mean logits); repeat for several. Adds the ensemble's cells."),
    json_out: Path | None = json_option("the matrix (bench.json's content)"),
) -> None:
    """Measure accuracy and speed of every model x engine x precision x batch x requests.

    Exit code 1 when labels of --data were left out (named on stderr).
    """
    from leanvision.data.labelled import load_labelled_set
    from leanvision.evaluation.benchmark import (
        BenchOptions,
        ValSet,
        run_bench,
        score_entries,
        variant_costs,
    )
    from leanvision.evaluation.report import (
        machine_meta,
        markdown_table,
        summary_rows,
        write_bench_report,
    )
    from leanvision.evaluation.scores import score
    from leanvision.largeimage.inputs import expand_inputs

    cards = [ModelCard.load(m) for m in models]
    if len({c.task for c in cards}) > 1:
        raise ConfigError("bench compares models of one task at a time")
    tta_modes = _names(tta, "--tta", ("none", "flip"))
    _check_classify_options(cards[0], models[0], tta_modes, ensemble)
    options = BenchOptions(
        backends=_names(backends, "--backends", ("onnxruntime", "openvino")),
        precisions=_names(precisions, "--precisions", ("fp32", "bf16")),
        batches=_ints(batches, "--batches"), requests=_ints(requests, "--requests"),
        seconds=seconds, threads=threads, drop_border=drop_border, tta=tta_modes)
    # The labelled set read here (not through `data.valset`) so that what it left out is reported.
    labelled = load_labelled_set(data, cards[0])
    val = ValSet(labelled.files, labelled.scorer(), labelled.metric, labelled.higher_is_better)
    slide_paths = expand_inputs([slides]) if slides is not None else []
    with json_result(json_out) as emit:
        with progress_bar("bench") as update:
            cells = run_bench(models, val=val, slides=slide_paths, options=options, ensemble=ensemble,
                              progress=lambda label, done, total: update(done, total, label))
        scored = []
        if score_name:
            keys = {"reference": _reference(cells, val.metric, reference)} if score_name is ScoreKind.MLPERF_GATE else {}
            accuracy_keys = ({} if score_name is ScoreKind.S3 else
                             {"accuracy": val.metric, "higher_is_better": val.higher_is_better})
            scored = score(score_name, score_entries(cells, metric=val.metric, slides=len(slide_paths)),
                           **accuracy_keys, **keys)
        paths = write_bench_report(cells, out_dir, metric=val.metric, higher_is_better=val.higher_is_better,
                                   meta=machine_meta(), scored=scored, score_name=score_name or "")
        out.print(markdown_table(summary_rows(cells, val.metric)), markup=False, highlight=False)
        for cost in variant_costs(cells, val.metric):
            out.print(f"{cost['cell']}: {val.metric} {cost['gain']:+.4f}, {cost['images_per_s']:.1f} images/s = "
                      f"{cost['speed']:.2f}x {cost['base']}'s {cost['base_images_per_s']:.1f}",
                      markup=False, highlight=False)
        out.print(f"wrote {paths['json']}, {paths['md']}, {paths['html']}", markup=False, highlight=False)
        emit(json.loads(Path(paths["json"]).read_text()))
    finish_batch([(issue.path, issue.reason) for issue in labelled.issues], done=len(labelled.files), noun="label")
