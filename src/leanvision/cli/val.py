"""`leanvision val`: COCO mAP (with a PR curve) of a detection checkpoint, or MAE, RMSE and NAE
of a counting checkpoint, on a dataset of its task."""

from __future__ import annotations

from pathlib import Path

import typer

from leanvision.cli.ui import console, emit_json, out, progress_bar
from leanvision.core import DataError, ModelCard, Task


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
    from leanvision.training.checkpoint import model_from_checkpoint

    ckpt = _checkpoint_file(checkpoint)
    model, card = model_from_checkpoint(ckpt)
    target = out_dir if out_dir is not None else ckpt.parent
    if card.task is Task.COUNT:
        _val_counting(model, card, data, ckpt, target, json_flag=json_flag, batch_size=batch_size)
    else:
        _val_detection(model, card, data, ckpt, target, json_flag=json_flag, batch_size=batch_size)


def _val_detection(model, card: ModelCard, data: Path, ckpt: Path, target: Path, *, json_flag: bool,
                   batch_size: int) -> None:
    from leanvision.data.formats import read_detection
    from leanvision.evaluation.detection import plot_pr_curve
    from leanvision.training.predict import evaluate_model

    dataset = read_detection(data)
    if not dataset.images:
        raise DataError("the dataset has no images", path=data)
    if tuple(dataset.classes) != tuple(card.class_names):
        raise DataError(f"dataset classes {list(dataset.classes)} differ from the model's {list(card.class_names)}", path=data)
    for issue in dataset.issues:
        console.print(f"[yellow]warning[/]: {issue} (left out)", markup=True, highlight=False)
    with progress_bar(f"val {data}") as update:
        metrics, predictions = evaluate_model(model, dataset, card.input, class_names=card.class_names,
                                              batch_size=batch_size, progress=update)
    _print(metrics, predictions, data)
    plot_pr_curve(metrics, target / "pr_curve.png")
    out.print(f"PR curve: {target / 'pr_curve.png'}")
    if json_flag:
        result = {"checkpoint": str(ckpt), "data": str(data), "input_size": [card.input.height, card.input.width],
                  "skipped": [str(i) for i in predictions.skipped], **metrics.to_dict()}
        emit_json(result, target / "metrics.json")
        out.print(f"metrics JSON: {target / 'metrics.json'}")


def _print(metrics, predictions, data: Path) -> None:
    out.print(f"{data}: {metrics.num_images} images ({metrics.num_negative_images} negative), "
              f"{metrics.num_ground_truth} boxes, {metrics.num_predictions} detections, "
              f"{len(predictions.skipped)} images skipped")
    out.print(f"mAP@[.5:.95] {metrics.map:.4f}  mAP@0.5 {metrics.map50:.4f}  mAP@0.75 {metrics.map75:.4f}  "
              f"AR@100 {metrics.ar100:.4f}")
    for name in metrics.class_names:
        ap50, ap = metrics.ap50_per_class[name], metrics.ap_per_class[name]
        out.print(f"  {name}: AP@0.5 {ap50:.4f}  AP {ap:.4f}", markup=False, highlight=False)


def _val_counting(model, card: ModelCard, data: Path, ckpt: Path, target: Path, *, json_flag: bool,
                  batch_size: int) -> None:
    from leanvision.data.formats import drop_outside_points, read_counting
    from leanvision.training.count_eval import evaluate_counting
    from leanvision.training.tasks.count import output_stride

    dataset = read_counting(data)
    if not dataset.images:
        raise DataError("the counting set has no images", path=data)
    dataset, outside = drop_outside_points(dataset)
    for issue in [*dataset.issues, *outside]:
        console.print(f"[yellow]warning[/]: {issue}", markup=True, highlight=False)
    with progress_bar(f"val {data}") as update:
        metrics, predictions = evaluate_counting(model, dataset, card.input, output_stride=output_stride(card),
                                                 batch_size=batch_size, progress=update)
    out.print(f"{data}: {metrics.images} images ({metrics.images - metrics.nae_images} without people), "
              f"{int(sum(predictions.truth))} people, {len(predictions.skipped)} images skipped")
    out.print(f"MAE {metrics.mae:.3f}  RMSE {metrics.rmse:.3f}  NAE {metrics.nae:.4f} (over {metrics.nae_images} "
              "images with people)")
    if json_flag:
        per_image = [{"file_name": r.file_name, "true": t, "predicted": round(p, 3)}
                     for r, t, p in zip(predictions.records, predictions.truth, predictions.counts, strict=True)]
        result = {"checkpoint": str(ckpt), "data": str(data), "input_size": [card.input.height, card.input.width],
                  "skipped": [str(i) for i in predictions.skipped], **metrics.to_dict(), "images_counted": per_image}
        emit_json(result, target / "metrics.json")
        out.print(f"metrics JSON: {target / 'metrics.json'}")
