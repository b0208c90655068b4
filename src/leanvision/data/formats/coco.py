"""COCO JSON detection labels: `annotations.json` with images in `images/` beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from leanvision.core import DataError, Detections
from leanvision.core.boxes import xywh_to_xyxy, xyxy_to_xywh
from leanvision.core.io import atomic_write_text
from leanvision.data.formats.common import Issue
from leanvision.data.formats.detection import DetectionSet, ImageRecord

ANNOTATIONS_FILE = "annotations.json"


def coco_json_path(path: Path) -> Path:
    return path if path.suffix == ".json" else path / ANNOTATIONS_FILE


def _image_root(json_path: Path) -> Path:
    images = json_path.parent / "images"
    return images if images.is_dir() else json_path.parent


def read_coco(path: Path) -> DetectionSet:
    """Read a COCO JSON file (or a directory holding `annotations.json`).

    Category ids may be any integers; they map to labels 0..C-1 in ascending id order.
    """
    json_path = coco_json_path(path)
    try:
        data = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise DataError("COCO annotations file not found", path=json_path) from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse COCO JSON: {exc}", path=json_path) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError("not a COCO detection file (no 'images' list)", path=json_path)
    issues: list[Issue] = []
    where = str(json_path)

    categories = sorted(data.get("categories", []), key=lambda c: c["id"])
    cat_to_label = {c["id"]: i for i, c in enumerate(categories)}
    classes = tuple(str(c["name"]) for c in categories)

    records: dict[int, ImageRecord] = {}
    boxes: dict[int, list[list[float]]] = {}
    labels: dict[int, list[int]] = {}
    seen_names: set[str] = set()
    for entry in data["images"]:
        image_id = entry.get("id")
        name = entry.get("file_name")
        if image_id in records:
            issues.append(Issue(where, f"duplicate image id {image_id} ({name})"))
            continue
        if name in seen_names:
            issues.append(Issue(where, f"image file {name} is listed twice"))
            continue
        seen_names.add(name)
        records[image_id] = ImageRecord(
            str(name), int(entry.get("width", 0)), int(entry.get("height", 0)), Detections.empty(), image_id
        )
        boxes[image_id], labels[image_id] = [], []

    seen_ann: set[int] = set()
    for ann in data.get("annotations", []):
        ann_id = ann.get("id")
        if ann_id in seen_ann:
            issues.append(Issue(where, f"duplicate annotation id {ann_id}"))
            continue
        seen_ann.add(ann_id)
        image_id = ann.get("image_id")
        if image_id not in records:
            issues.append(Issue(where, f"annotation {ann_id} refers to unknown image id {image_id}"))
            continue
        if ann.get("category_id") not in cat_to_label:
            issues.append(
                Issue(f"{where}:{records[image_id].file_name}",
                      f"annotation {ann_id} has unknown class id {ann.get('category_id')}")
            )
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4):
            issues.append(Issue(where, f"annotation {ann_id} has no valid bbox: {bbox!r}"))
            continue
        boxes[image_id].append(bbox)
        labels[image_id].append(cat_to_label[ann["category_id"]])

    images = []
    for image_id, record in records.items():
        xyxy = xywh_to_xyxy(np.asarray(boxes[image_id], np.float64).reshape(-1, 4))
        record.targets = Detections.from_boxes(xyxy, labels[image_id])
        images.append(record)
    return DetectionSet(classes, images, _image_root(json_path), issues)


def write_coco(dataset: DetectionSet, path: Path) -> Path:
    """Write `dataset`'s labels as COCO JSON (category ids 1..C); returns the JSON path."""
    json_path = coco_json_path(path)
    annotations = []
    for record in dataset.images:
        xywh = xyxy_to_xywh(record.targets.boxes.astype(np.float64))
        for box, label in zip(xywh.tolist(), record.targets.labels.tolist(), strict=True):
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": record.id,
                "category_id": label + 1,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": 0,
            })
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
