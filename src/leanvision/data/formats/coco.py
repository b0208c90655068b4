"""COCO JSON detection labels: `annotations.json` with images in `images/` beside it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from leanvision.core import DataError, Detections
from leanvision.core.boxes import xyxy_to_xywh
from leanvision.core.io import atomic_write_text
from leanvision.data.formats.common import Issue, inside, is_number, name_problem, size_field
from leanvision.data.formats.detection import DetectionSet, ImageRecord, box_values_problem

ANNOTATIONS_FILE = "annotations.json"


def coco_json_path(path: Path) -> Path:
    return path if path.suffix == ".json" else path / ANNOTATIONS_FILE


def _image_root(json_path: Path) -> Path:
    images = json_path.parent / "images"
    return images if images.is_dir() else json_path.parent


def _categories(data: dict, json_path: Path) -> tuple[dict[int, int], tuple[str, ...]]:
    """COCO category id -> label 0..C-1 (ascending id order), and the class names."""
    categories = data.get("categories")
    if categories is None:
        if data.get("annotations"):
            raise DataError("no 'categories' list: the classes of the annotations are unknown", path=json_path)
        categories = []
    if not isinstance(categories, list) or not all(
        isinstance(c, dict) and isinstance(c.get("id"), int) and not isinstance(c.get("id"), bool)
        and isinstance(c.get("name"), str) for c in categories
    ):
        raise DataError("'categories' must be a list of {\"id\": int, \"name\": str}", path=json_path)
    ids = [c["id"] for c in categories]
    if len(set(ids)) != len(ids):
        raise DataError(f"duplicate category ids in {sorted(ids)}", path=json_path)
    categories = sorted(categories, key=lambda c: c["id"])
    return {c["id"]: i for i, c in enumerate(categories)}, tuple(c["name"] for c in categories)


def _image_entry(entry: object) -> tuple[int, str, int, int]:
    """(id, file name, width, height) of an `images` entry; ValueError saying what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError(f"image entry is not an object: {entry!r}")
    image_id, name = entry.get("id"), entry.get("file_name")
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        raise ValueError(f"image id must be an integer, got {image_id!r} ({name!r})")
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"image {image_id}: {problem}")
    sizes = []
    for key in ("width", "height"):
        try:
            sizes.append(size_field(entry.get(key)))
        except ValueError as exc:
            raise ValueError(f"image {image_id} ({name}): {key}: {exc}") from None
    return image_id, name, sizes[0], sizes[1]


def _annotation(ann: dict, cat_to_label: dict[int, int]) -> tuple[list[float], int, bool, bool]:
    """(xyxy box, label, crowd, difficult) of one annotation; ValueError saying what is wrong.

    `difficult` is not COCO's: leanvision writes it for VOC's difficult objects (other COCO
    readers see an ordinary object).
    """
    category = ann.get("category_id")
    if not isinstance(category, int) or category not in cat_to_label:
        raise ValueError(f"has unknown class id {category!r}")
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
        raise ValueError(f"has no valid bbox (4 finite numbers x, y, w, h): {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    xyxy = [x, y, x + w, y + h]
    problem = box_values_problem(xyxy)
    if problem is not None:
        raise ValueError(f"bbox {_xywh(bbox)} {problem}")
    flags = []
    for key in ("iscrowd", "difficult"):
        value = ann.get(key, 0)
        if value not in (0, 1) or isinstance(value, float):
            raise ValueError(f"{key} must be 0 or 1, got {value!r}")
        flags.append(bool(value))
    return xyxy, cat_to_label[category], flags[0], flags[1]


def _xywh(bbox: list) -> str:
    return "[" + ", ".join(f"{v:g}" if is_number(v) else repr(v) for v in bbox) + "]"


def read_coco(path: Path) -> DetectionSet:
    """Read a COCO JSON file (or a directory holding `annotations.json`).

    Category ids may be any integers; they map to labels 0..C-1 in ascending id order.
    Images and annotations that cannot be read (a field of the wrong type, a coordinate
    that is not a finite number, an unsafe file name) are left out as `issues`.
    """
    json_path = coco_json_path(path)
    try:
        data = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise DataError("COCO annotations file not found", path=json_path) from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"cannot parse COCO JSON: {exc}", path=json_path) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError("not a COCO detection file (no 'images' list)", path=json_path)
    if not isinstance(data.get("annotations", []), list):
        raise DataError("'annotations' is not a list", path=json_path)
    issues: list[Issue] = []
    where = str(json_path)
    cat_to_label, classes = _categories(data, json_path)

    entries: dict[int, tuple[str, int, int]] = {}
    rejected: dict[int, int] = {}  # image id left out -> index of its issue, which counts its objects
    seen_names: set[str] = set()
    for entry in data["images"]:
        try:
            image_id, name, width, height = _image_entry(entry)
        except ValueError as exc:
            issues.append(Issue(where, str(exc), images=1))
            if isinstance(entry, dict) and isinstance(entry.get("id"), int) and entry["id"] not in entries:
                rejected.setdefault(entry["id"], len(issues) - 1)
            continue
        if image_id in entries:
            issues.append(Issue(where, f"duplicate image id {image_id} ({name})", images=1))
            continue
        if name in seen_names:
            issues.append(Issue(where, f"image file {name} is listed twice", images=1))
            rejected.setdefault(image_id, len(issues) - 1)
            continue
        seen_names.add(name)
        entries[image_id] = (name, width, height)

    found: dict[int, list[tuple[list[float], int, bool, bool, str]]] = {i: [] for i in entries}
    lost: dict[int, int] = {}  # image id left out -> its annotations
    seen_ann: set[int] = set()
    for ann in data.get("annotations", []):
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        if not isinstance(ann_id, int) or isinstance(ann_id, bool):
            issues.append(Issue(where, f"annotation without an integer id: {str(ann)[:80]}", objects=1))
            continue
        if ann_id in seen_ann:
            issues.append(Issue(where, f"duplicate annotation id {ann_id}", objects=1))
            continue
        seen_ann.add(ann_id)
        image_id = ann.get("image_id")
        if not isinstance(image_id, int) or image_id not in entries:
            if isinstance(image_id, int) and image_id in rejected:  # left out with its image: counted there
                lost[image_id] = lost.get(image_id, 0) + 1
            else:
                issues.append(Issue(where, f"annotation {ann_id} refers to unknown image id {image_id!r}",
                                    objects=1))
            continue
        try:
            xyxy, label, crowd, difficult = _annotation(ann, cat_to_label)
        except ValueError as exc:
            issues.append(Issue(f"{where}:{entries[image_id][0]}", f"annotation {ann_id} {exc}", objects=1,
                                image=entries[image_id][0]))
            continue
        found[image_id].append((xyxy, label, crowd, difficult, f"annotation {ann_id} bbox {_xywh(ann['bbox'])}"))

    for image_id, index in rejected.items():
        if lost.get(image_id):
            issues[index] = replace(issues[index], objects=lost[image_id])
    images = []
    for image_id, (name, width, height) in entries.items():
        boxes = found[image_id]
        targets = Detections.from_boxes(np.asarray([b[0] for b in boxes], np.float64).reshape(-1, 4),
                                        [b[1] for b in boxes])
        images.append(ImageRecord(name, width, height, targets, image_id, crowd=np.array([b[2] for b in boxes], bool),
                                  difficult=np.array([b[3] for b in boxes], bool),
                                  sources=tuple((where, b[4]) for b in boxes)))
    return DetectionSet(classes, images, _image_root(json_path), issues)


def write_coco(dataset: DetectionSet, path: Path) -> Path:
    """Write `dataset`'s labels as COCO JSON (category ids 1..C); returns the JSON path.

    Crowd boxes keep `iscrowd: 1`; VOC's difficult objects get a `difficult: 1` key, which
    leanvision reads back and other COCO tools ignore.
    """
    json_path = coco_json_path(path)
    for record in dataset.images:
        inside(json_path.parent, record.file_name)
    annotations = []
    for record in dataset.images:
        xywh = xyxy_to_xywh(record.targets.boxes.astype(np.float64))
        flags = zip(record.crowd.tolist(), record.difficult.tolist(), strict=True)
        for box, label, (crowd, difficult) in zip(xywh.tolist(), record.targets.labels.tolist(), flags, strict=True):
            annotation = {
                "id": len(annotations) + 1,
                "image_id": record.id,
                "category_id": label + 1,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": int(crowd),
            }
            if difficult:
                annotation["difficult"] = 1
            annotations.append(annotation)
    data = {
        "images": [
            {"id": r.id, "file_name": r.file_name, "width": r.width, "height": r.height}
            for r in dataset.images
        ],
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(dataset.classes)],
    }
    atomic_write_text(json_path, json.dumps(data) + "\n")
    return json_path
