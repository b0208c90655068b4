"""`data stats`: what is in a dataset, as numbers (`stats.json`) and plots (PNG).

Detection: objects per class, box size (sqrt of area) and aspect-ratio histograms, objects
per image, negatives. Classification: the class long tail (S1's data analysis) and image
aspect ratios. Counting: people per image. Segmentation: pixels per class.
Plots use matplotlib's object API (no pyplot, no global backend switch).

A classification set's `long_tail` also splits its classes into head / medium / tail thirds
by images, most first (`evaluation.classification.class_groups`, the groups `val` reports
top-1 for when these are the training images), with the classes, images and the fewest /
most images a class of each third has, and the Gini coefficient of images over classes (0:
every class the same; towards 1: a few classes hold them all).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from leanvision.core import DataError
from leanvision.core.errors import plural
from leanvision.core.io import atomic_path, atomic_write_text
from leanvision.data.formats import (
    ClassificationSet,
    CountingSet,
    DetectionSet,
    SegmentationSet,
    find_datasets,
    read_dataset,
)
from leanvision.data.images import read_size
from leanvision.evaluation.classification import GROUPS, class_groups


def _histogram(values: np.ndarray, bins: int | np.ndarray = 20) -> dict:
    counts, edges = np.histogram(values, bins=bins) if len(values) else (np.zeros(0, int), np.zeros(0))
    return {"counts": counts.tolist(), "edges": [round(float(e), 4) for e in edges]}


def _summary(values: np.ndarray) -> dict:
    if not len(values):
        return {"n": 0}
    q = np.percentile(values, [0, 5, 50, 95, 100])
    return {"n": len(values), "mean": float(values.mean()),
            **{k: float(v) for k, v in zip(("min", "p5", "median", "p95", "max"), q, strict=True)}}


def _tail(counts: dict[str, int]) -> dict:
    ordered = sorted(counts.values(), reverse=True)
    nonzero = [c for c in ordered if c] or [0]
    return {"head_to_tail_ratio": (nonzero[0] / nonzero[-1]) if nonzero[-1] else None,
            "classes_with_no_samples": sum(1 for c in ordered if c == 0)}


def gini(counts: np.ndarray) -> float | None:
    """Gini coefficient of `counts` (mean absolute difference over twice the mean): 0 when
    every class has as many, (C - 1) / C when one class has them all; None without any."""
    values = np.sort(np.asarray(counts, np.float64))
    if not len(values) or values.sum() == 0:
        return None
    ranks = np.arange(1, len(values) + 1)
    return float(2 * (ranks * values).sum() / (len(values) * values.sum()) - (len(values) + 1) / len(values))


def _groups(counts: dict[str, int]) -> dict:
    """Head / medium / tail thirds (`class_groups`): classes, images, share of the images and
    the fewest / most images of a class in each; None for the min / max of an empty third."""
    values = np.array(list(counts.values()), np.int64)
    total = max(int(values.sum()), 1)
    result = {}
    for name, members in zip(GROUPS, class_groups(values, len(values)), strict=True):
        inside = values[members]
        result[name] = {"classes": len(members), "images": int(inside.sum()),
                        "share_of_images": float(inside.sum() / total),
                        "min_images_per_class": int(inside.min()) if len(inside) else None,
                        "max_images_per_class": int(inside.max()) if len(inside) else None}
    return result


def long_tail_line(stats: dict) -> str | None:
    """One line of a classification set's long tail, for the console; None for other tasks."""
    groups = stats.get("long_tail", {}).get("groups")
    if stats.get("task") != "classify" or not groups:
        return None

    def third(name: str) -> str:
        g = groups[name]
        if not g["classes"]:
            return f"{name} -"
        few, most = g["min_images_per_class"], g["max_images_per_class"]
        per_class = f"{few}" if few == most else f"{few}-{most}"
        return f"{name} {plural(g['classes'], 'class', 'classes')} ({per_class} a class, {g['share_of_images']:.0%} of images)"

    tail = stats["long_tail"]
    ratio = tail["head_to_tail_ratio"]
    extras = [f"imbalance {ratio:.3g}x (largest / smallest class with images)" if ratio is not None else None,
              f"Gini {tail['gini']:.2f}" if tail.get("gini") is not None else None,
              f"{plural(tail['classes_with_no_samples'], 'class', 'classes')} without images"
              if tail["classes_with_no_samples"] else None]
    shown = "; ".join(e for e in extras if e)
    return "long tail: " + ", ".join(third(name) for name in GROUPS) + (f"; {shown}" if shown else "")


def detection_stats(ds: DetectionSet) -> dict:
    boxes = np.concatenate([r.targets.boxes for r in ds.images]) if ds.images else np.zeros((0, 4))
    labels = np.concatenate([r.targets.labels for r in ds.images]) if ds.images else np.zeros(0, int)
    wh = np.clip(boxes[:, 2:] - boxes[:, :2], 1e-6, None)
    per_class = {name: int((labels == i).sum()) for i, name in enumerate(ds.classes)}
    per_image = np.array([len(r.targets) for r in ds.images])
    return {
        "task": "detect", "images": len(ds.images), "objects": len(boxes),
        "negative_images": int((per_image == 0).sum()), "objects_per_class": per_class,
        "long_tail": _tail(per_class), "objects_per_image": _summary(per_image),
        "box_size_px": _summary(np.sqrt(wh[:, 0] * wh[:, 1])),
        "box_aspect_ratio_w_over_h": _summary(wh[:, 0] / wh[:, 1]),
        "image_width": _summary(np.array([r.width for r in ds.images])),
        "image_height": _summary(np.array([r.height for r in ds.images])),
        "histograms": {
            "box_size_px": _histogram(np.sqrt(wh[:, 0] * wh[:, 1]), 30),
            "box_aspect_ratio_log2": _histogram(np.log2(wh[:, 0] / wh[:, 1]), 30),
        },
    }


def class_long_tail(ds: ClassificationSet) -> tuple[dict[str, int], dict]:
    """(images per class name, `long_tail`: ratio, classes without images, Gini, head /
    medium / tail groups) of a classification set; `data stats` and `data check` report it."""
    per_class = Counter(label for _, label in ds.items)
    counts = {name: per_class.get(i, 0) for i, name in enumerate(ds.classes)}
    return counts, _tail(counts) | {"gini": gini(np.array(list(counts.values()))), "groups": _groups(counts)}


def _readable_sizes(ds: ClassificationSet) -> tuple[np.ndarray, list[str]]:
    """(width, height) of every image whose header can be read, and one line per image that
    cannot: stats is batch work, an unreadable image is left out and named, never fatal."""
    sizes, unreadable = [], []
    for rel, _ in ds.items:
        try:
            sizes.append(read_size(ds.image_root / rel))
        except DataError as exc:
            unreadable.append(str(exc))
    return np.array(sizes, float).reshape(-1, 2), unreadable


def classification_stats(ds: ClassificationSet) -> dict:
    counts, long_tail = class_long_tail(ds)
    sizes, unreadable = _readable_sizes(ds)
    aspect = sizes[:, 0] / np.maximum(sizes[:, 1], 1)
    return {
        "task": "classify", "images": len(ds.items), "classes": len(ds.classes),
        "images_per_class": counts,
        "long_tail": long_tail,
        "images_per_class_summary": _summary(np.array(list(counts.values()))),
        "image_aspect_ratio_w_over_h": _summary(aspect),
        "histograms": {"image_aspect_ratio_log2": _histogram(np.log2(np.maximum(aspect, 1e-6)), 30)},
        "left_out": unreadable,
    }


def counting_stats(ds: CountingSet) -> dict:
    counts = np.array([len(r.points) for r in ds.images])
    return {
        "task": "count", "images": len(ds.images), "people": int(counts.sum()),
        "images_with_no_people": int((counts == 0).sum()), "people_per_image": _summary(counts),
        "histograms": {"people_per_image": _histogram(counts, 30)},
    }


def segmentation_stats(ds: SegmentationSet) -> dict:
    import cv2

    pixels = np.zeros(256, np.int64)
    for _, mask_rel in ds.items:
        mask = cv2.imread(str(ds.mask_root / mask_rel), cv2.IMREAD_UNCHANGED)
        if mask is not None:
            pixels += np.bincount(mask.reshape(-1), minlength=256)[:256]
    total = max(int(pixels.sum()), 1)
    per_class = {name: float(pixels[i] / total) for i, name in enumerate(ds.classes)}
    return {"task": "segment", "images": len(ds.items), "pixel_fraction_per_class": per_class,
            "ignore_fraction": float(pixels[ds.ignore_index] / total) if ds.ignore_index < 256 else 0.0}


_STATS = {DetectionSet: detection_stats, ClassificationSet: classification_stats,
          CountingSet: counting_stats, SegmentationSet: segmentation_stats}


def _bar(ax, counts: dict[str, float], title: str, ylabel: str) -> None:
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    ax.bar(range(len(ordered)), [v for _, v in ordered], color="#4c72b0")
    if len(ordered) <= 30:
        ax.set_xticks(range(len(ordered)), [k for k, _ in ordered], rotation=60, ha="right", fontsize=7)
    else:
        ax.set_xlabel("classes, most frequent first")
    ax.set_title(title)
    ax.set_ylabel(ylabel)


def _hist(ax, hist: dict, title: str, xlabel: str) -> None:
    edges = np.asarray(hist["edges"])
    if len(edges):
        ax.stairs(hist["counts"], edges, fill=True, color="#55a868")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")


_GROUP_COLOURS = {"head": "#4c72b0", "medium": "#dd8452", "tail": "#c44e52"}


def _sorted_classes(ax, counts: dict[str, int]) -> None:
    """Images per class, most first, on a log axis; the head / medium / tail thirds in
    their own colour, shaded and labelled with their classes and images."""
    names = list(counts)
    values = np.array(list(counts.values()), np.int64)
    floor = 0.5  # a log axis cannot reach 0: classes without images stay empty
    position = 0
    for name, members in zip(GROUPS, class_groups(values, len(values)), strict=True):
        if not len(members):
            continue
        span = (position - 0.5, position + len(members) - 0.5)
        inside = values[members]
        ax.axvspan(*span, color=_GROUP_COLOURS[name], alpha=0.08, linewidth=0)
        ax.stairs(np.maximum(inside, floor), np.arange(len(members) + 1) + span[0], baseline=floor, fill=True,
                  color=_GROUP_COLOURS[name],
                  label=f"{name}: {plural(len(members), 'class', 'classes')}, {plural(int(inside.sum()), 'image')}")
        ax.text(sum(span) / 2, 0.98, name, transform=ax.get_xaxis_transform(), ha="center", va="top",
                fontsize=8, color=_GROUP_COLOURS[name])
        position += len(members)
    order = np.concatenate(class_groups(values, len(values))) if len(values) else np.zeros(0, int)
    if 0 < len(order) <= 30:
        ax.set_xticks(range(len(order)), [names[i] for i in order], rotation=60, ha="right", fontsize=7)
    else:
        ax.set_xlabel("classes, most images first")
    ax.set_xlim(-0.5, max(len(values), 1) - 0.5)
    ax.set_yscale("log")
    ax.set_ylim(floor, max(int(values.max(initial=1)), 1) * 3)
    ax.set_ylabel("images (log scale)")
    ax.set_title("images per class, sorted: head / medium / tail thirds")
    if len(values):
        ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 0.92))


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)


def plot_stats(stats: dict, out: Path, prefix: str) -> list[Path]:
    """Write the PNG plots for `stats`; returns their paths."""
    from matplotlib.figure import Figure

    plots = []
    task = stats["task"]
    panels: list[tuple] = []
    if task == "detect":
        panels = [("bar", stats["objects_per_class"], "objects per class (long tail)", "objects"),
                  ("hist", stats["histograms"]["box_size_px"], "box size", "sqrt(area), px"),
                  ("hist", stats["histograms"]["box_aspect_ratio_log2"], "box aspect ratio", "log2(w / h)")]
    elif task == "classify":
        panels = [("bar", stats["images_per_class"], "images per class (long tail)", "images"),
                  ("hist", stats["histograms"]["image_aspect_ratio_log2"], "image aspect ratio", "log2(w / h)")]
    elif task == "count":
        panels = [("hist", stats["histograms"]["people_per_image"], "people per image", "people")]
    elif task == "segment":
        panels = [("bar", stats["pixel_fraction_per_class"], "pixels per class", "fraction")]
    for kind, data, title, label in panels:
        fig = Figure(figsize=(7, 4))
        ax = fig.add_subplot()
        (_bar if kind == "bar" else _hist)(ax, data, title, label)
        path = out / f"{prefix}{title.split(' (')[0].replace(' ', '_')}.png"
        _save(fig, path)
        plots.append(path)
    if task == "classify":
        fig = Figure(figsize=(7, 4))
        _sorted_classes(fig.add_subplot(), stats["images_per_class"])
        path = out / f"{prefix}images_per_class_sorted.png"
        _save(fig, path)
        plots.append(path)
    return plots


def dataset_stats(path: Path, out: Path) -> dict:
    """Stats of every dataset at or under `path`, written to `out/stats.json` + PNG plots.

    Labels the reader had to leave out (`Issue`s: a bad box, an unsafe file name) are not in
    the statistics; each dataset's `left_out` lists them, one line each.
    """
    result = {}
    for ds_path, fmt in find_datasets(path):
        dataset = read_dataset(ds_path, fmt)
        stats = _STATS[type(dataset)](dataset) | {"format": str(fmt)}
        stats["left_out"] = [str(issue) for issue in getattr(dataset, "issues", ())] + stats.get("left_out", [])
        name = ds_path.name if ds_path != path else "dataset"
        prefix = "" if ds_path == path else f"{name}_"
        stats["plots"] = [p.name for p in plot_stats(stats, out, prefix)]
        result[name] = stats
    atomic_write_text(out / "stats.json", json.dumps(result, indent=2) + "\n")
    return result
