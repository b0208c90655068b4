"""`leanvision val`: a checkpoint scored on a labelled set of its task (`data.labelled`), by its
task's adapter (`TaskAdapter.validate`): COCO mAP with a PR curve (detection), MAE, RMSE and
NAE (counting), top-1 / top-5 (classification; `--tta flip`, and `--ensemble CKPT` to average
the logits of several checkpoints, recorded in metrics.json's `ensemble`).

Exit codes (`ui.finish_batch`): 0 every labelled image scored; 1 some left out (labels that
cannot be used, images that do not decode), named in a one-line account on stderr and in
metrics.json; 2 nothing scored."""

from __future__ import annotations

from pathlib import Path

import typer

from leanvision.cli.ui import (
    emit_json,
    finish_batch,
    json_option,
    json_result,
    out,
    progress_bar,
    warn,
)
from leanvision.runtime.classify import Tta


def _checkpoint_file(path: Path) -> Path:
    """A run directory means its best.pt (else last.pt); a file is itself."""
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
    return path


def val(
    checkpoint: Path = typer.Argument(..., help="A checkpoint (.pt) or a run directory (its best.pt, else last.pt)."),
    data: Path = typer.Argument(..., help="A dataset of the model's task: COCO, VOC or YOLO (detection); points JSON/CSV or ShanghaiTech (counting)."),
    json_out: Path | None = json_option("the metrics (metrics.json's content)"),
    out_dir: Path | None = typer.Option(None, "--out", help="Where pr_curve.png and metrics.json (headline, per-class AP, PR arrays; per-image counts) go (default: beside the checkpoint)."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per model call."),
    tta: Tta = typer.Option(Tta.NONE, "--tta",
                            help="Test-time augmentation (classifiers): flip averages the logits of each image and its mirror."),
    ensemble: list[Path] = typer.Option([], "--ensemble", help="Classifiers: another checkpoint or run directory whose logits are averaged with CHECKPOINT's (after --tta). Repeat for several; same classes and input spec."),
) -> None:
    """Run the model over DATA at its card's input size; print mAP, mAP@0.5, AR, per-class AP
    (detection) or MAE, RMSE, NAE (counting). Exit code 1 when images or labels were left
    out (named on stderr and in metrics.json), 2 when none could be scored."""
    from leanvision.core import ConfigError
    from leanvision.data.labelled import load_labelled_set
    from leanvision.training.checkpoint import model_from_checkpoint
    from leanvision.training.tasks import adapter_for

    ckpt = _checkpoint_file(checkpoint)
    model, card = model_from_checkpoint(ckpt)
    target = out_dir if out_dir is not None else ckpt.parent
    adapter = adapter_for(card.task)
    if tta not in getattr(adapter, "tta_modes", ("none",)):
        raise ConfigError(f"--tta {tta.value} is not available for a {card.task.value} model")
    options = {"tta": tta.value} if tta is not Tta.NONE else {}
    members = _ensemble(adapter, card, ckpt, ensemble)
    labelled = load_labelled_set(data, card)
    for issue in labelled.issues:
        warn(f"{issue} (left out)")
    with json_result(json_out) as emit:
        with progress_bar(f"val {data}") as update:
            report = adapter.validate([model, *(m for _, m in members)] if members else model, labelled, card,
                                      batch_size=batch_size, progress=update, out_dir=target, **options)
        if members:
            out.print(f"ensemble: mean logits of {len(members) + 1} models: {ckpt}, "
                      f"{', '.join(str(path) for path, _ in members)}", markup=False, highlight=False)
        for line in report.lines:
            out.print(line, markup=False, highlight=False)
        result = {"checkpoint": str(ckpt), "data": str(data), "input_size": [card.input.height, card.input.width],
                  "left_out": [str(issue) for issue in labelled.issues], **report.json}
        if members:
            result["ensemble"] = [str(ckpt), *(str(path) for path, _ in members)]
        emit_json(result, target / "metrics.json")
        out.print(f"metrics JSON: {target / 'metrics.json'}", markup=False, highlight=False)
        emit(result)
    undecoded = report.json.get("skipped", [])
    skipped = [(issue.path, issue.reason) for issue in labelled.issues] + [_split(text) for text in undecoded]
    finish_batch(skipped, done=len(labelled.files) - len(undecoded), noun="item",
                 listed_in=target / "metrics.json")


def _ensemble(adapter, card, ckpt: Path, paths: list[Path]) -> list[tuple[Path, object]]:
    """The --ensemble members as (checkpoint, model), checked against CHECKPOINT's card; a
    one-line ConfigError for a task that has no ensembles or a member that disagrees."""
    if not paths:
        return []
    from leanvision.core import ConfigError
    from leanvision.runtime.classify import check_members
    from leanvision.training.checkpoint import model_from_checkpoint

    if not getattr(adapter, "ensembles", False):
        raise ConfigError(f"--ensemble averages classifiers' logits; '{card.name}' is a {card.task.value} model",
                          path=ckpt)
    files = [_checkpoint_file(path) for path in paths]
    loaded = [model_from_checkpoint(path) for path in files]
    check_members([card, *(c for _, c in loaded)], [ckpt, *files])
    return [(path, model) for path, (model, _) in zip(files, loaded, strict=True)]


def _split(issue: str) -> tuple[str, str]:
    """"path: reason" (an `Issue` as text, as `Validation.json` keeps it) -> (path, reason)."""
    path, _, reason = issue.partition(": ")
    return path, reason
