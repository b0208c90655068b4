"""YOLO txt labels: `labels/<stem>.txt` beside `images/`, class names in `data.yaml`.

Each line is `class cx cy w h`, normalised by the image size, which YOLO files do not
store: it is read from the image header. Written with full float precision so that boxes
round-trip to float32 (to ~1e-6 px). `data.yaml` follows Ultralytics (`names: {0: ...}`);
a plain `classes.txt` is read too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leanvision.core import DataError, Detections
from leanvision.core.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from leanvision.core.io import atomic_write_text
from leanvision.data.formats.common import Issue
from leanvision.data.formats.detection import DetectionSet, ImageRecord
from leanvision.data.images import list_images, read_size


def _read_classes(path: Path) -> tuple[str, ...]:
    data_yaml = path / "data.yaml"
    if data_yaml.exists():
        import yaml

        try:
            names = (yaml.safe_load(data_yaml.read_text()) or {}).get("names")
        except yaml.YAMLError as exc:
            raise DataError(f"cannot parse YAML: {exc}", path=data_yaml) from None
        if isinstance(names, dict):
            return tuple(str(names[k]) for k in sorted(names))
        if isinstance(names, list):
            return tuple(str(n) for n in names)
        raise DataError("no 'names' list or mapping", path=data_yaml)
    classes_txt = path / "classes.txt"
    if classes_txt.exists():
        return tuple(line.strip() for line in classes_txt.read_text().splitlines() if line.strip())
    raise DataError("YOLO dataset has neither data.yaml nor classes.txt", path=path)


def _parse_lines(txt: Path, num_classes: int, issues: list[Issue]) -> tuple[list[int], list[list[float]]]:
    labels, boxes = [], []
    for lineno, line in enumerate(txt.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            label, values = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            issues.append(Issue(f"{txt}:{lineno}", f"not a YOLO box line: {line.strip()!r}"))
            continue
        if len(values) != 4:
            issues.append(Issue(f"{txt}:{lineno}", f"expected 5 fields, got {len(fields)}"))
            continue
        if not 0 <= label < num_classes:
            issues.append(Issue(f"{txt}:{lineno}", f"unknown class id {label} (classes: 0..{num_classes - 1})"))
            continue
        labels.append(label)
        boxes.append(values)
    return labels, boxes


def read_yolo(path: Path) -> DetectionSet:
    """Read a YOLO directory (with `images/` and `labels/`)."""
    image_dir, label_dir = path / "images", path / "labels"
    if not image_dir.is_dir() or not label_dir.is_dir():
        raise DataError("not a YOLO dataset (needs images/ and labels/ folders)", path=path)
    classes = _read_classes(path)
    issues: list[Issue] = []
    images = []
    image_stems = set()
    for image_id, image_path in enumerate(list_images(image_dir), start=1):
        rel = image_path.relative_to(image_dir)
        image_stems.add(rel.with_suffix("").as_posix())
        txt = (label_dir / rel).with_suffix(".txt")
        labels, boxes = _parse_lines(txt, len(classes), issues) if txt.exists() else ([], [])
        try:
            width, height = read_size(image_path)
        except Exception as exc:  # the image is reported by check; its boxes cannot be placed
            issues.append(Issue(str(image_path), f"cannot read image size: {exc}"))
            width = height = 0
        norm = np.asarray(boxes, np.float64).reshape(-1, 4)
        xyxy = cxcywh_to_xyxy(norm) * np.array([width, height, width, height], np.float64)
        images.append(ImageRecord(rel.as_posix(), width, height, Detections.from_boxes(xyxy, labels), image_id))
    for txt in sorted(label_dir.rglob("*.txt")):
        if txt.relative_to(label_dir).with_suffix("").as_posix() not in image_stems:
            issues.append(Issue(str(txt), "label file has no image"))
    return DetectionSet(classes, images, image_dir, issues)


def write_yolo(dataset: DetectionSet, path: Path) -> Path:
    """Write `labels/<stem>.txt` per image (empty for negatives) and `data.yaml`."""
    import yaml

    for record in dataset.images:
        if record.width <= 0 or record.height <= 0:
            raise DataError("YOLO labels need the image size, which is unknown", path=record.file_name)
        scale = np.array([record.width, record.height, record.width, record.height], np.float64)
        norm = xyxy_to_cxcywh(record.targets.boxes.astype(np.float64)) / scale
        lines = [
            " ".join([str(label), *(repr(float(v)) for v in box)])
            for label, box in zip(record.targets.labels.tolist(), norm, strict=True)
        ]
        txt = (path / "labels" / record.file_name).with_suffix(".txt")
        atomic_write_text(txt, "".join(line + "\n" for line in lines))
    data = {"path": ".", "train": "images", "val": "images",
            "names": dict(enumerate(dataset.classes))}
    atomic_write_text(path / "data.yaml", yaml.safe_dump(data, sort_keys=False))
    return path
