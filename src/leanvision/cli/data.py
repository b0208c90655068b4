"""`leanvision data ...`: synthesize, convert, check and describe datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from leanvision.cli.ui import console, emit_json, out, progress_bar
from leanvision.core import ConfigError, DataError, Task

app = typer.Typer(help="Datasets: synth, convert, check, stats, anchors, preview.", no_args_is_help=True)

JSON_OPTION = typer.Option(None, "--json", help="Also write the result as JSON to this file ('-' for stdout).")


def _json_target(value: Path | None) -> Path | None:
    return None if value is None or str(value) == "-" else value


@app.command()
def synth(
    task: Task = typer.Option(..., "--task", help="Which kind of data to synthesize."),
    out_dir: Path = typer.Option(..., "--out", help="Output directory (created)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
    images: int | None = typer.Option(None, "--images", help="Training images (default per task; val gets ~1/4)."),
    slides: int = typer.Option(0, "--slides", help="detect: also write K large slides (tiled pyramidal TIFF + JPEG)."),
    slide_size: int = typer.Option(12000, "--slide-size", help="detect: slide side in pixels."),
    large_images: int | None = typer.Option(None, "--large-images", help="count: large crowd images (default 3)."),
    large_size: int = typer.Option(3072, "--large-size", help="count: long side of the large images."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace dataset folders not written by synth."),
    json_out: Path | None = JSON_OPTION,
) -> None:
    """Write a deterministic synthetic dataset for TASK under OUT."""
    from leanvision.data.synth import synthesize

    with progress_bar(f"synth {task}") as update:
        summary = synthesize(task, out_dir, seed=seed, images=images, slides=slides, slide_size=slide_size,
                             large_images=large_images, large_size=large_size, overwrite=overwrite,
                             progress=lambda stage, done, total: update(done, total, stage))
    for split, info in summary["splits"].items():
        out.print(f"{out_dir / split}: {info['images']} images, {info['objects']} objects")
    if json_out is not None:
        emit_json(summary, _json_target(json_out))


@app.command()
def convert(
    src: Path = typer.Argument(..., help="Detection dataset (COCO dir or .json, VOC dir, YOLO dir)."),
    dst: Path = typer.Argument(..., help="Output directory."),
    to: str = typer.Option(..., "--to", help="coco, voc or yolo."),
) -> None:
    """Convert a detection dataset between COCO JSON, Pascal VOC XML and YOLO txt."""
    from leanvision.core import DataError
    from leanvision.data.formats import Format, convert_detection

    if to not in ("coco", "voc", "yolo"):
        raise DataError(f"--to must be coco, voc or yolo, got '{to}'")
    dataset = convert_detection(src, dst, Format(to))
    for issue in dataset.issues:
        console.print(f"[yellow]warning[/]: {issue} (not converted)")
    out.print(f"{dst}: {len(dataset.images)} images, {dataset.num_objects} objects as {to}")


@app.command()
def check(
    path: Path = typer.Argument(..., help="A dataset, or a folder of datasets (train/, val/, ...)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Decoding threads."),
    json_out: Path | None = JSON_OPTION,
) -> None:
    """Report every problem in a dataset (exit 1 if any): images, labels, boxes, sizes."""
    from leanvision.data.check import check as run_check

    with progress_bar(f"check {path}") as update:
        reports = run_check(path, workers=workers, progress=update)
    problems = 0
    for report in reports:
        out.print(f"{report.path} ({report.format}, {report.task}): {report.images} images, "
                  f"{report.objects} objects, {len(report.issues)} problems")
        for issue in report.issues:
            out.print(f"  {issue}", markup=False, highlight=False)
        problems += len(report.issues)
    if json_out is not None:
        emit_json({"problems": problems, "datasets": [r.to_dict() for r in reports]}, _json_target(json_out))
    if problems:
        raise typer.Exit(1)


@app.command()
def stats(
    path: Path = typer.Argument(..., help="A dataset, or a folder of datasets."),
    out_dir: Path = typer.Option(..., "--out", help="Where stats.json and the PNG plots go."),
) -> None:
    """Describe a dataset: class long tail, box sizes and aspect ratios, as plots + stats.json."""
    from leanvision.data.stats import dataset_stats

    result = dataset_stats(path, out_dir)
    for name, s in result.items():
        objects = s.get("objects", s.get("people", s["images"]))
        out.print(f"{name} ({s['task']}, {s['format']}): {s['images']} images, {objects} objects/items; "
                  f"plots: {', '.join(s['plots'])}")
    out.print(f"wrote {out_dir / 'stats.json'}")


@app.command()
def anchors(
    path: Path = typer.Argument(..., help="A detection dataset (COCO, VOC or YOLO): the training set."),
    recipe: str | None = typer.Option(None, "--recipe", help="A training recipe (YAML or a shipped name): its input size, resize mode and scale say how large the boxes are in training, its model's anchors are the ones checked. Default: boxes at their own size, torchvision's anchors."),
    threshold: float = typer.Option(0.5, "--iou", min=0.05, max=0.95, help="IoU a positive anchor needs (RetinaNet's fg_iou_threshold)."),
    json_out: Path | None = JSON_OPTION,
) -> None:
    """Share of boxes, per class, that an anchor reaches at IoU >= --iou with the recipe's anchors
    and with anchors fitted to the boxes (k-means ratios, one size factor); prints the fitted
    anchors as recipe overrides."""
    import yaml

    from leanvision.data.anchors import box_shapes, fit_anchors
    from leanvision.data.formats import read_detection

    dataset = read_detection(path)
    if recipe is not None:
        from leanvision.core.config import recipe_path
        from leanvision.training.config import TrainConfig
        from leanvision.training.tasks.detect import training_box_shapes

        config = TrainConfig.from_yaml(recipe_path(recipe))
        model = _retinanet_anchors(config.model.overrides)
        boxes, labels = training_box_shapes(dataset, config.data, config.augment)
    else:
        model = _retinanet_anchors({})
        boxes, labels = box_shapes(dataset)
    if not len(boxes):
        raise DataError("the dataset has no boxes: nothing to fit anchors to", path=path)
    result = fit_anchors(boxes, labels, dataset.classes, threshold=threshold, **model)
    out.print(f"{result.boxes} boxes; an anchor at IoU >= {threshold:g}: {result.coverage_before:.1%} with the "
              f"{'recipe' if recipe else 'default'} anchors, {result.coverage_after:.1%} with fitted ones "
              f"(sizes x{result.factor:.3g}, ratios {list(result.ratios)})")
    for name, row in result.per_class.items():
        out.print(f"  {name}: {row['boxes']} boxes, median {row['median_px']:g} px: {row['before']:.1%} -> "
                  f"{row['after']:.1%}", markup=False, highlight=False)
    out.print("fitted anchors as recipe overrides (model.overrides):", markup=False)
    out.print(yaml.safe_dump(result.overrides(), default_flow_style=None, sort_keys=False).rstrip(),
              markup=False, highlight=False)
    if json_out is not None:
        emit_json(result.to_dict(), _json_target(json_out))


def _retinanet_anchors(overrides: dict) -> dict:
    """The anchor sizes and ratios a RetinaNet is built with under a recipe's `overrides`."""
    from leanvision.models.tasks.detect.retinanet import RetinaNetOptions

    options = RetinaNetOptions.from_dict({k: v for k, v in overrides.items() if k in ("anchor_sizes", "aspect_ratios")},
                                         where="model.overrides")
    ratios = {tuple(r) for r in options.aspect_ratios}
    if len(ratios) != 1:
        raise ConfigError("data anchors fits ratios shared by every level; the recipe's differ per level")
    return {"sizes": options.anchor_sizes, "ratios": ratios.pop()}


@app.command()
def preview(
    path: Path = typer.Argument(..., help="A detection dataset (COCO, VOC or YOLO)."),
    recipe: Path = typer.Option(..., "--recipe", help="A training recipe YAML (its augment steps), a shipped recipe's name (s0_cervical_retinanet), or a YAML list of steps."),
    n: int = typer.Option(16, "--n", min=1, help="Number of augmented samples."),
    out_file: Path = typer.Option(..., "--out", help="Grid image to write (.png)."),
    seed: int = typer.Option(0, "--seed"),
    negatives: Path | None = typer.Option(None, "--negatives", help="Folder of negative images for replace_background (default: the dataset's own)."),
) -> None:
    """Draw N augmented samples of a dataset with their boxes, as the recipe would train on them."""
    from leanvision.core.config import recipe_path
    from leanvision.data.preview import load_augment_steps, preview_grid

    written = preview_grid(path, load_augment_steps(recipe_path(recipe)), n=n, out=out_file, seed=seed, negatives=negatives)
    out.print(f"wrote {written}")
