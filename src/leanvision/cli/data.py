"""`leanvision data ...`: synthesize, convert, check and describe datasets."""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from leanvision.cli.ui import console, json_option, json_result, out, progress_bar
from leanvision.core import ConfigError, DataError, Task
from leanvision.core.errors import plural


class DetectionFormat(enum.StrEnum):
    """The formats `data convert` writes."""

    COCO = "coco"
    VOC = "voc"
    YOLO = "yolo"


app = typer.Typer(help="Datasets: synth, convert, check, stats, anchors, preview.", no_args_is_help=True)



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
    classes: int | None = typer.Option(None, "--classes", help="classify: number of product classes (default 200)."),
    scene: str | None = typer.Option(None, "--scene", metavar="<cytology|blood>",
                                     help="detect: cytology (S0's one-class tiles, the default) or blood "
                                          "(640x480 smears: red cells, white cells, platelets)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace dataset folders not written by synth."),
    json_out: Path | None = json_option(),
) -> None:
    """Write a deterministic synthetic dataset for TASK under OUT."""
    from leanvision.data.synth import synthesize

    with json_result(json_out) as emit:
        with progress_bar(f"synth {task}") as update:
            summary = synthesize(task, out_dir, seed=seed, images=images, slides=slides, slide_size=slide_size,
                                 large_images=large_images, large_size=large_size, classes=classes, scene=scene,
                                 overwrite=overwrite,
                                 progress=lambda stage, done, total: update(done, total, stage))
        for split, info in summary["splits"].items():
            out.print(f"{out_dir / split}: {plural(info['images'], 'image')}, {plural(info['objects'], 'object')}")
        emit(summary)


@app.command()
def convert(
    src: Path = typer.Argument(..., help="Detection dataset (COCO dir or .json, VOC dir, YOLO dir)."),
    dst: Path = typer.Argument(..., help="Output directory: new, empty, or a previous conversion (replaced whole)."),
    to: DetectionFormat = typer.Option(..., "--to", help="The format to write."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Convert the clean part of a source with problems, "
                                  "list what is left out and exit 1 (default: refuse, write nothing)."),
    json_out: Path | None = json_option(),
) -> None:
    """Convert a detection dataset between COCO JSON, Pascal VOC XML and YOLO txt."""
    from leanvision.data.formats import Format, convert_detection

    with json_result(json_out) as emit:
        result = convert_detection(src, dst, Format(to.value), skip_bad=skip_bad)
        for issue in result.dropped:
            console.print(f"left out: {issue}", markup=False, highlight=False, soft_wrap=True)
        for flag, count in result.unheld.items():
            console.print(f"left out: {plural(count, f'{flag} box', f'{flag} boxes')}: {to} cannot mark them",
                          markup=False, highlight=False, soft_wrap=True)
        written = result.written
        out.print(f"{dst}: {plural(len(written.images), 'image')}, {plural(written.num_objects, 'object')} as {to}",
                  markup=False, highlight=False)
        if result.dropped:
            out.print(f"left out: {plural(result.dropped_images, 'image')}, "
                      f"{plural(result.dropped_objects, 'object')} ({plural(len(result.dropped), 'problem')}, "
                      "listed above)", markup=False, highlight=False)
        emit({"out": str(dst), "format": str(to.value), "images": len(written.images),
              "objects": written.num_objects, "left_out": {"images": result.dropped_images,
                                                           "objects": result.dropped_objects,
                                                           "problems": [str(i) for i in result.dropped]},
              "unmarked": dict(result.unheld)})
    if result.dropped:
        raise typer.Exit(1)


_NOUNS = {"objects": ("object", "objects"), "people": ("person", "people")}


@app.command()
def check(
    path: Path = typer.Argument(..., help="A dataset, or a folder of datasets (train/, val/, ...)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Decoding threads."),
    json_out: Path | None = json_option(),
) -> None:
    """Report every problem in a dataset (exit 1 if any): images, labels, boxes, sizes."""
    from leanvision.data.check import check as run_check
    from leanvision.data.stats import long_tail_line

    with json_result(json_out) as emit:
        with progress_bar(f"check {path}") as update:
            reports = run_check(path, workers=workers, progress=update)
        problems = 0
        for report in reports:
            out.print(f"{report.path} ({report.format}, {report.task}): {plural(report.images, 'image')}, "
                      f"{plural(report.objects, 'object')}, {plural(len(report.issues), 'problem')}")
            if report.long_tail is not None and (line := long_tail_line({"task": "classify",
                                                                          "long_tail": report.long_tail})):
                out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
            for issue in report.issues:
                out.print(f"  {issue}", markup=False, highlight=False)
            problems += len(report.issues)
        emit({"problems": problems, "datasets": [r.to_dict() for r in reports]})
    if problems:
        raise typer.Exit(1)


@app.command()
def stats(
    path: Path = typer.Argument(..., help="A dataset, or a folder of datasets."),
    out_dir: Path = typer.Option(..., "--out", help="Where stats.json and the PNG plots go."),
    json_out: Path | None = json_option(),
) -> None:
    """Describe a dataset: class long tail, box sizes and aspect ratios, as plots + stats.json.

    Exit code 1 when labels had to be left out (listed on stderr and in stats.json; the
    statistics describe the rest), as `data check` does."""
    from leanvision.data.stats import dataset_stats, long_tail_line

    with json_result(json_out) as emit:
        result = dataset_stats(path, out_dir)
        left_out = [issue for s in result.values() for issue in s["left_out"]]
        for issue in left_out:
            console.print(f"left out: {issue}", highlight=False, soft_wrap=True)
        for name, s in result.items():
            noun = next((n for n in ("objects", "people") if n in s), None)
            counted = plural(s[noun], *_NOUNS[noun]) if noun else plural(s["images"], "item")
            out.print(f"{name} ({s['task']}, {s['format']}): {plural(s['images'], 'image')}, {counted}; "
                      f"plots: {', '.join(s['plots'])}", highlight=False)
            if (line := long_tail_line(s)) is not None:
                out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        out.print(f"wrote {out_dir / 'stats.json'}", highlight=False)
        if left_out:
            out.print(f"left out: {plural(len(left_out), 'problem')} (listed above; `leanvision data check` lists "
                      "every problem, images included)", highlight=False)
        emit(result)
    if left_out:
        raise typer.Exit(1)


@app.command()
def anchors(
    path: Path = typer.Argument(..., help="A detection dataset (COCO, VOC or YOLO): the training set."),
    recipe: str | None = typer.Option(None, "--recipe", help="A training recipe (YAML or a shipped name): its input size, resize mode and scale say how large the boxes are in training, its model's anchors are the ones checked. Default: boxes at their own size, torchvision's anchors."),
    threshold: float = typer.Option(0.5, "--iou", min=0.05, max=0.95, help="IoU a positive anchor needs (RetinaNet's fg_iou_threshold)."),
    json_out: Path | None = json_option(),
) -> None:
    """Share of boxes, per class, that an anchor reaches at IoU >= --iou with the recipe's anchors
    and with anchors fitted to the boxes (k-means ratios, one size factor); prints the fitted
    anchors as recipe overrides."""
    import yaml

    from leanvision.data.anchors import box_shapes, fit_anchors
    from leanvision.data.formats import read_detection

    with json_result(json_out) as emit:
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
        out.print(f"{plural(result.boxes, 'box', 'boxes')}; an anchor at IoU >= {threshold:g}: {result.coverage_before:.1%} with the "
                  f"{'recipe' if recipe else 'default'} anchors, {result.coverage_after:.1%} with fitted ones "
                  f"(sizes x{result.factor:.3g}, ratios {list(result.ratios)})")
        for name, row in result.per_class.items():
            out.print(f"  {name}: {plural(row['boxes'], 'box', 'boxes')}, median {row['median_px']:g} px: {row['before']:.1%} -> "
                      f"{row['after']:.1%}", markup=False, highlight=False)
        out.print("fitted anchors as recipe overrides (model.overrides):", markup=False)
        out.print(yaml.safe_dump(result.overrides(), default_flow_style=None, sort_keys=False).rstrip(),
                  markup=False, highlight=False)
        emit(result.to_dict())


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
