"""Pascal VOC XML labels: `Annotations/*.xml`, images in `JPEGImages/`, `labels.txt`.

VOC coordinates are 1-based pixel indices: a box starting at pixel 0 has xmin = 1. Like
detectron2, reading subtracts 1 from xmin/ymin only, and writing adds it back, so boxes
round-trip exactly. Coordinates are written as floats when they are not whole pixels.
`labels.txt` (one class per line) keeps the class order and classes without objects;
without it the classes are the object names in sorted order.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from leanvision.core import DataError, Detections
from leanvision.core.io import atomic_write_text
from leanvision.data.formats.common import Issue
from leanvision.data.formats.detection import DetectionSet, ImageRecord

LABELS_FILE = "labels.txt"


def _number(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else repr(value)


def _parse(xml_path: Path) -> tuple[str, int, int, list[tuple[str, list[float]]]]:
    root = ET.parse(xml_path).getroot()
    name = root.findtext("filename") or f"{xml_path.stem}.jpg"
    size = root.find("size")
    width = int(float(size.findtext("width", "0"))) if size is not None else 0
    height = int(float(size.findtext("height", "0"))) if size is not None else 0
    objects = []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"object '{obj.findtext('name')}' has no bndbox")
        x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        objects.append(((obj.findtext("name") or "").strip(), [x1 - 1, y1 - 1, x2, y2]))
    return name, width, height, objects


def read_voc(path: Path) -> DetectionSet:
    """Read a VOC directory (with `Annotations/`)."""
    ann_dir = path / "Annotations"
    if not ann_dir.is_dir():
        raise DataError("not a VOC dataset (no Annotations/ folder)", path=path)
    issues: list[Issue] = []
    parsed = []
    for xml_path in sorted(ann_dir.glob("*.xml")):
        try:
            parsed.append(_parse(xml_path))
        except (ET.ParseError, ValueError, TypeError) as exc:
            issues.append(Issue(str(xml_path), f"cannot parse VOC XML: {exc}"))
    labels_path = path / LABELS_FILE
    if labels_path.exists():
        classes = tuple(line.strip() for line in labels_path.read_text().splitlines() if line.strip())
    else:
        classes = tuple(sorted({name for *_, objects in parsed for name, _ in objects}))
    index = {name: i for i, name in enumerate(classes)}

    images, seen = [], set()
    for image_id, (name, width, height, objects) in enumerate(parsed, start=1):
        if name in seen:
            issues.append(Issue(str(ann_dir), f"image file {name} is labelled by two XML files"))
            continue
        seen.add(name)
        known = [(index[n], box) for n, box in objects if n in index]
        for n, _ in objects:
            if n not in index:
                issues.append(Issue(str(ann_dir / f"{Path(name).stem}.xml"), f"unknown class '{n}'"))
        boxes = np.asarray([b for _, b in known], np.float64).reshape(-1, 4)
        targets = Detections.from_boxes(boxes, [label for label, _ in known])
        images.append(ImageRecord(name, width, height, targets, image_id))
    image_root = path / "JPEGImages"
    return DetectionSet(classes, images, image_root if image_root.is_dir() else path, issues)


def _xml(record: ImageRecord, classes: tuple[str, ...]) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = record.file_name
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(record.width)
    ET.SubElement(size, "height").text = str(record.height)
    ET.SubElement(size, "depth").text = "3"
    for box, label in zip(record.targets.boxes.astype(np.float64), record.targets.labels, strict=True):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = classes[label]
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), (box[0] + 1, box[1] + 1, box[2], box[3]), strict=True):
            ET.SubElement(bnd, key).text = _number(repr(float(value)))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_voc(dataset: DetectionSet, path: Path) -> Path:
    """Write one XML per image into `path/Annotations` and the class list to labels.txt."""
    ann_dir = path / "Annotations"
    stems = [Path(r.file_name).with_suffix("").as_posix() for r in dataset.images]
    if len(set(stems)) != len(stems):
        raise DataError("VOC needs unique file names without extension; two images share one", path=path)
    for record, stem in zip(dataset.images, stems, strict=True):
        if "/" in stem:
            raise DataError(f"VOC cannot hold images in subfolders ({record.file_name})", path=path)
        atomic_write_text(ann_dir / f"{stem}.xml", _xml(record, dataset.classes))
    atomic_write_text(path / LABELS_FILE, "\n".join(dataset.classes) + "\n")
    return path
