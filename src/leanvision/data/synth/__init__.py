"""Deterministic synthetic datasets, one per task, written in the formats `data.formats` reads.

| task     | scene (source system)          | layout under `out`                                  |
|----------|--------------------------------|-----------------------------------------------------|
| detect   | cervical cytology tiles (S0)   | train/, val/: COCO; slides/: COCO of TIFF + JPEG    |
| detect   | `scene="blood"`: 3-class smears | train/, val/: COCO (rbc, wbc, platelet; 640 x 480)  |
| count    | crowds seen from above (S3)    | train/, val/, large/: images/ + points.json         |
| classify | retail packages (S1)           | train/<class>/, val/<class>/: ImageFolder           |
| segment  | street scenes (S4)             | train/, val/: images/, masks/, classes.json         |

Same seed, same bytes: every image has its own generator seeded by (seed, task, split,
index), so it does not depend on how many images are asked for or in which order.
Only numpy and OpenCV are needed, except for slides (the `io` extra: tifffile, pyvips).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from leanvision.core import ConfigError, DataError, Task
from leanvision.core.config import as_enum
from leanvision.core.io import atomic_write_text
from leanvision.data.synth import blood, classify, count, detect, segment
from leanvision.data.synth import slides as slide_sets
from leanvision.data.synth.common import Progress, val_count

DEFAULT_LARGE_IMAGES = 3
SUMMARY_FILE = "synth.json"
_OUTPUT_DIRS = ("train", "val", "slides", "large")


def _check_range(name: str, value: int, low: int, high: int | None = None, why: str = "") -> None:
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bound}{why}, got {value}")


def _check_args(task: Task, images: int | None, slides_: int, slide_size: int,
                large_images: int | None, large_size: int, classes: int | None, scene: str | None) -> None:
    row = _TASKS[task]
    if scene is not None and scene not in row.scenes:
        offered = (f"{task} has {', '.join(row.scenes)}" if row.scenes else
                   "; ".join(f"{t} has {', '.join(r.scenes)}" for t, r in _TASKS.items() if r.scenes) + f", {task} one only")
        raise ConfigError(f"scene {scene!r} is not a {task} scene: {offered}")
    if scene == "blood" and slides_:
        raise ConfigError("slides are cytology slides: the blood scene writes none (use --scene cytology)")
    if classes is not None and not row.classes:
        raise ConfigError(f"the number of classes is chosen for the {', '.join(t for t, r in _TASKS.items() if r.classes)} "
                          f"task only, not {task}")
    if row.classes:
        _check_range("classes", classes or classify.NUM_CLASSES, classify.MIN_CLASSES)
    minimum = (classes or classify.NUM_CLASSES) if row.classes else 1
    if images is not None:
        _check_range("images", images, minimum, why=f" (one for each of the {minimum} classes)" if row.classes else "")
    _check_range("slides", slides_, 0)
    if slides_ and not row.slides:
        raise ConfigError(f"slides are made for the {', '.join(t for t, r in _TASKS.items() if r.slides)} task only, "
                          f"not {task}")
    _check_range("slide_size", slide_size, slide_sets.MIN_SIZE, slide_sets.MAX_SIZE,
                 why=" (JPEG allows at most 65500 px a side)" if slide_size > slide_sets.MAX_SIZE else "")
    if large_images is not None and not row.large:
        raise ConfigError(f"large images are made for the {', '.join(t for t, r in _TASKS.items() if r.large)} task "
                          f"only, not {task}")
    _check_range("large_images", large_images or 0, 0)
    _check_range("large_size", large_size, 1024, count.MAX_LARGE_SIZE)


def _prepare(out: Path, overwrite: bool) -> None:
    """Clear what an earlier run wrote; refuse to mix with any other dataset unless asked.

    Output of an earlier run (marked by `synth.json`) is replaced, so that reruns work;
    train/, val/, ... without that mark may be a real dataset and need `overwrite`.
    """
    if out.exists() and not out.is_dir():
        raise DataError("output path exists and is not a directory", path=out)
    existing = [out / d for d in _OUTPUT_DIRS if (out / d).exists()]
    if existing and not (overwrite or (out / SUMMARY_FILE).is_file()):
        names = ", ".join(f"{p.name}/" for p in existing)
        raise DataError(f"already holds {names} not written by 'data synth'; choose another directory "
                        "or overwrite", path=out)
    for path in existing:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _detect(out: Path, train: int, seed: int, progress: Progress | None, *, slides_: int, slide_size: int,
            scene: str, **_: object) -> dict:
    if scene == "blood":
        return {"classes": list(blood.CLASSES), "scene": scene, "splits": {
            "train": blood.write_smears(out / "train", "train", train, seed=seed, progress=progress),
            "val": blood.write_smears(out / "val", "val", val_count(train), seed=seed, progress=progress)}}
    splits = {
        "train": detect.write_tiles(out / "train", "train", train, seed=seed, progress=progress),
        "val": detect.write_tiles(out / "val", "val", val_count(train), seed=seed, progress=progress),
    }
    if slides_:
        splits["slides"] = slide_sets.write_slides(out / "slides", slides_, slide_size, seed=seed, progress=progress)
    return {"classes": list(detect.CLASSES), "splits": splits}


def _count(out: Path, train: int, seed: int, progress: Progress | None, *, large: int, large_size: int,
           **_: object) -> dict:
    splits = {
        "train": count.write_crowds(out / "train", "train", train, seed=seed, progress=progress),
        "val": count.write_crowds(out / "val", "val", val_count(train), seed=seed, progress=progress),
    }
    if large:
        splits["large"] = count.write_large_crowds(out / "large", large, large_size, seed=seed, progress=progress)
    return {"splits": splits}


def _classify(out: Path, train: int | None, seed: int, progress: Progress | None, *, classes: int,
              **_: object) -> dict:
    counts = classify.class_counts(seed, train, classes)
    splits = {
        "train": classify.write_products(out / "train", "train", counts, seed=seed, progress=progress),
        "val": classify.write_products(out / "val", "val", classify.val_counts(counts), seed=seed, progress=progress),
    }
    noisy = splits["train"].pop("noisy_labels")
    splits["val"].pop("noisy_labels")  # always 0: validation is filed right
    return {"classes": classify.class_names(len(counts)), "splits": splits,
            "train_per_class": {"max": int(counts.max()), "min": int(counts.min())},
            "noisy_train_labels": noisy}


def _segment(out: Path, train: int, seed: int, progress: Progress | None, **_: object) -> dict:
    splits = {
        "train": segment.write_streets(out / "train", "train", train, seed=seed, progress=progress),
        "val": segment.write_streets(out / "val", "val", val_count(train), seed=seed, progress=progress),
    }
    return {"classes": list(segment.CLASSES), "ignore_index": segment.IGNORE, "splits": splits}


@dataclass(frozen=True)
class _Synth:
    """One task's synthetic set: its writer, default training images (None: the writer's
    own), whether the number of classes is a choice (then at least one image each), and the
    extras it writes (slides, large images), and its scenes (the first is the default)."""

    write: Callable[..., dict]
    images: int | None
    classes: bool = False
    slides: bool = False
    large: bool = False
    scenes: tuple[str, ...] = ()


_TASKS = {
    Task.DETECT: _Synth(_detect, 120, slides=True, scenes=("cytology", "blood")),
    Task.COUNT: _Synth(_count, 60, large=True),
    Task.CLASSIFY: _Synth(_classify, None, classes=True),  # ~1240 in 200 classes, Zipf: see classify.py
    Task.SEGMENT: _Synth(_segment, 60),
}


def synthesize(task: Task, out: Path, *, seed: int = 0, images: int | None = None,
               slides: int = 0, slide_size: int = 12000, progress: Progress | None = None,
               large_images: int | None = None, large_size: int = 3072, classes: int | None = None,
               scene: str | None = None, overwrite: bool = False) -> dict:
    """Write a synthetic dataset for `task` under `out`.

    Args:
        task: which dataset (see the module table for the layouts).
        out: output directory; created if missing.
        seed: any integer >= 0; the same seed writes byte-identical files.
        images: training images (validation gets about a quarter); None for the task's
            default: detect 120, count 60, segment 60, classify ~1240 (Zipf, 60 to 3 a class).
        slides: detect only: number of whole slides in `out/slides/`, each written as a
            pyramidal tiled JPEG TIFF and a JPEG with the same pixels and boxes.
        slide_size: side of a slide in pixels, 1000 to 65500 (the JPEG limit).
        progress: called as `progress(stage, done, total)`; stages are split names
            ("train", "val", "large") and "slide_000", ...
        large_images: count only: large crowd images in `out/large/` (None = 3).
        large_size: width of a large crowd image, 1024 to 6144 px (height is 3/4 of it).
        classes: classify only: number of product classes (None = 200), at least 2.
        scene: detect only: "cytology" (None, S0's one-class tiles) or "blood" (640 x 480
            smears with red cells, white cells and platelets: three classes far apart in size
            and frequency).
        overwrite: replace train/, val/, slides/, large/ if `out` has them although no
            earlier synthesize() run wrote them (its own output is always replaced).

    Returns:
        JSON-ready summary: {"task", "seed", "out", "splits": {name: {"images", "objects"}},
        ...} plus "classes" where the task has them; also written (without "out") to
        `out/synth.json`.
    """
    task = as_enum(Task, task, what="task")
    _check_range("seed", seed, 0)
    _check_args(task, images, slides, slide_size, large_images, large_size, classes, scene)
    _prepare(out, overwrite)
    row = _TASKS[task]
    train = images if images is not None else row.images
    large = DEFAULT_LARGE_IMAGES if large_images is None else large_images
    body = row.write(out, train, seed, progress, slides_=slides, slide_size=slide_size, large=large,
                     large_size=large_size, classes=classes or classify.NUM_CLASSES,
                     scene=scene or (row.scenes[0] if row.scenes else None))
    summary = {"task": str(task), "seed": seed, **body}
    # The file leaves out `out` so that two runs with one seed write identical bytes.
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return {"task": summary["task"], "seed": seed, "out": str(out), **body}


__all__ = ["SUMMARY_FILE", "synthesize"]
