"""`leanvision train`: run a training recipe, or resume a run.

Exit codes: 0; 1 when images or labels were left out of the data (corrupt, missing, bad
labels: warned about as they are found, then named in a one-line account on stderr and
listed in the `--json` result; the model is trained on the rest), as in every batch
command; 2 on bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from leanvision.cli.ui import EXIT_SKIPPED, json_option, json_result, out, skip_account
from leanvision.core.errors import plural

logger = logging.getLogger(__name__)

# How the figure that picks best.pt is printed, and the figures printed beside the best epoch.
_LABELS = {"fitness": "fitness (0.1 mAP@0.5 + 0.9 mAP)", "map50": "mAP@0.5", "mae": "MAE"}
_BEST_ALSO = {"map50": "mAP@0.5", "map": "mAP"}


def train(
    overrides: list[str] | None = typer.Argument(
        None, help="key=value overrides, dotted for groups: optimizer.lr=0.005 schedule.epochs=50."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Training recipe (YAML), e.g. configs/s0_cervical_retinanet.yaml."),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue a run from its directory (last.pt) or a checkpoint; ends as an uninterrupted run would."),
    json_out: Path | None = json_option(),
) -> None:
    """Train a detection or counting model; writes last.pt, best.pt, metrics.csv/.jsonl and config.yaml.

    Exit code 1 when images or labels were left out (named on stderr)."""
    from leanvision.core.resources import keep_freed_memory
    from leanvision.training import load_config, resume_config
    from leanvision.training import train as run_training

    keep_freed_memory()
    items = list(overrides or [])
    with json_result(json_out) as emit:
        if resume is not None:
            recipe = load_config(config, items) if config is not None else None
            recipe_config = resume_config(resume, items, recipe=recipe)
        else:
            recipe_config = load_config(config, items)
        result = run_training(recipe_config, resume=resume)
        label = _LABELS.get(result.metric, result.metric)
        if result.best is None:
            best = "no val set"
        else:  # a detection run's best also shows the two mAPs its fitness weighs
            extra = "".join(f", {name} {result.best_metrics[key]:.4f}" for key, name in _BEST_ALSO.items()
                            if key in result.best_metrics)
            best = f"best val {label} {result.best:.4f} (epoch {result.best_epoch}{extra})"
        out.print(f"{result.run_dir}: {plural(result.epochs, 'epoch')}, {best}; last.pt, best.pt, metrics.csv",
                  highlight=False)
        emit({"run_dir": str(result.run_dir), "epochs": result.epochs, "metric": result.metric,
              "best": result.best, "best_map50": result.best_map50, "best_epoch": result.best_epoch,
              "best_metrics": result.best_metrics,
              "last_metrics": result.last_metrics, "skipped": [str(issue) for issue in result.skipped]})
    if result.skipped:
        account = skip_account([(issue.path, issue.reason) for issue in result.skipped], noun="item")
        typer.echo(f"leanvision: warning: {account}; trained on the rest", err=True)
        raise typer.Exit(EXIT_SKIPPED)


def fixres(
    run: Path = typer.Argument(..., help="A finished classification run directory (config.yaml, best.pt)."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of the fine-tuning config."),
    size: int = typer.Option(280, "--size", min=32, help="Test resolution (square side; S1: 280 after training at 224)."),
    epochs: int = typer.Option(2, "--epochs", min=1, help="Fine-tuning epochs of the classifier."),
    lr: float = typer.Option(0.002, "--lr", min=0.0, help="Fine-tuning learning rate (cosine, no warm-up)."),
    out_dir: Path | None = typer.Option(None, "--out", help="The fine-tuned run (default: RUN/fixres<SIZE>)."),
    json_out: Path | None = json_option(),
) -> None:
    """FixRes (S1): fine-tune only the classifier (and BN statistics) at the test resolution.

    Prints top-1 at the training size, at SIZE before and at SIZE after; writes a run
    directory (best.pt at SIZE, fixres.json) that val, export and quantize take."""
    from leanvision.core.resources import keep_freed_memory
    from leanvision.training.fixres import RESULT_FILE
    from leanvision.training.fixres import fixres as run_fixres

    keep_freed_memory()
    with json_result(json_out) as emit:
        result = run_fixres(run, size=size, epochs=epochs, lr=lr, output=out_dir, overrides=list(overrides or []))
        train_side, test_side = "x".join(map(str, result.train_size)), "x".join(map(str, result.test_size))
        out.print(f"top-1 at {train_side}: {100 * result.top1_train_size:.2f}%; at {test_side} before fine-tuning "
                  f"{100 * result.top1_test_size_before:.2f}%, after {100 * result.top1_test_size_after:.2f}%",
                  highlight=False)
        out.print(f"{result.run_dir}: best.pt at {test_side}, {RESULT_FILE}", markup=False, highlight=False)
        emit(result.to_dict())
