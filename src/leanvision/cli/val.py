"""`leanvision val`: a checkpoint scored on a labelled set of its task (`data.labelled`), by its
task's adapter (`TaskAdapter.validate`): COCO mAP with a PR curve (detection), MAE, RMSE and
NAE (counting)."""

from __future__ import annotations

from pathlib import Path

import typer

from leanvision.cli.ui import console, emit_json, out, progress_bar


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
    json_flag: bool = typer.Option(False, "--json", help="Also write metrics.json (headline, per-class AP, PR arrays; per-image counts)."),
    out_dir: Path | None = typer.Option(None, "--out", help="Where pr_curve.png and metrics.json go (default: beside the checkpoint)."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per model call."),
) -> None:
    """Run the model over DATA at its card's input size; print mAP, mAP@0.5, AR, per-class AP
    (detection) or MAE, RMSE, NAE (counting)."""
    from leanvision.data.labelled import load_labelled_set
    from leanvision.training.checkpoint import model_from_checkpoint
    from leanvision.training.tasks import adapter_for

    ckpt = _checkpoint_file(checkpoint)
    model, card = model_from_checkpoint(ckpt)
    target = out_dir if out_dir is not None else ckpt.parent
    labelled = load_labelled_set(data, card)
    for issue in labelled.issues:
        console.print(f"[yellow]warning[/]: {issue} (left out)", markup=True, highlight=False)
    with progress_bar(f"val {data}") as update:
        report = adapter_for(card.task).validate(model, labelled, card, batch_size=batch_size, progress=update,
                                                 out_dir=target)
    for line in report.lines:
        out.print(line, markup=False, highlight=False)
    if json_flag:
        result = {"checkpoint": str(ckpt), "data": str(data), "input_size": [card.input.height, card.input.width],
                  **report.json}
        emit_json(result, target / "metrics.json")
        out.print(f"metrics JSON: {target / 'metrics.json'}")
