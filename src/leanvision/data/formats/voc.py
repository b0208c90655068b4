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
from leanvision.data.formats.common import Issue, inside, name_problem, parse_float, size_field
from leanvision.data.formats.detection import DetectionSet, ImageRecord, box_values_problem

LABELS_FILE = "labels.txt"


def _number(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else repr(value)


# One object of an XML file: class name, xyxy (0-based xmin/ymin), difficult, as written.
VocObject = tuple[str, list[float], bool, str]


def _object(obj: ET.Element, index: int) -> VocObject:
    """One `<object>`; ValueError saying what is wrong (no bndbox, a coordinate not a number)."""
    name = (obj.findtext("name") or "").strip()
    box = obj.find("bndbox")
    if box is None:
        raise ValueError(f"object {index} '{name}' has no bndbox")
    texts = [box.findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")]
    written = f"object {index} '{name}' [{', '.join(str(t).strip() for t in texts)}]"
    try:
        x1, y1, x2, y2 = (parse_float(t) for t in texts)
    except ValueError as exc:
        raise ValueError(f"{written}: {exc}") from None
    xyxy = [x1 - 1, y1 - 1, x2, y2]
    problem = box_values_problem(xyxy)
    if problem is not None:
        raise ValueError(f"{written} {problem}")
    difficult = (obj.findtext("difficult") or "0").strip()
    if difficult not in ("0", "1"):
        raise ValueError(f"{written}: difficult must be 0 or 1, got {difficult!r}")
    return name, xyxy, difficult == "1", written


class _LeftOut(ValueError):
    """An XML file whose image is left out, with the objects it labels (0 if it does not parse)."""

    def __init__(self, message: str, objects: int = 0) -> None:
        super().__init__(message)
        self.objects = objects


def _parse(xml_path: Path, issues: list[Issue]) -> tuple[str, int, int, list[VocObject]]:
    """One XML file; objects that cannot be read become issues, a file that cannot raises `_LeftOut`."""
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as exc:
        raise _LeftOut(f"cannot parse VOC XML: {exc}") from None
    labelled = sum(1 for _ in root.iter("object"))
    name = root.findtext("filename") or f"{xml_path.stem}.jpg"
    problem = name_problem(name)
    if problem is not None:
        raise _LeftOut(problem, labelled)
    size = root.find("size")
    try:
        width = size_field(size.findtext("width")) if size is not None else 0
        height = size_field(size.findtext("height")) if size is not None else 0
    except ValueError as exc:
        raise _LeftOut(f"<size>: {exc}", labelled) from None
    objects = []
    for index, obj in enumerate(root.iter("object")):
        try:
            objects.append(_object(obj, index))
        except ValueError as exc:
            issues.append(Issue(str(xml_path), str(exc), objects=1, image=name))
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
            parsed.append((xml_path, *_parse(xml_path, issues)))
        except _LeftOut as exc:
            issues.append(Issue(str(xml_path), f"{exc} (image left out)", images=1, objects=exc.objects))
    labels_path = path / LABELS_FILE
    if labels_path.exists():
        try:
            text = labels_path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read the class list: {exc}", path=labels_path) from None
        classes = tuple(line.strip() for line in text.splitlines() if line.strip())
    else:
        classes = tuple(sorted({obj[0] for *_, objects in parsed for obj in objects}))
    index = {name: i for i, name in enumerate(classes)}

    images, seen = [], set()
    for image_id, (xml_path, name, width, height, objects) in enumerate(parsed, start=1):
        if name in seen:
            issues.append(Issue(str(xml_path), f"image file {name} is labelled by two XML files", images=1,
                                objects=len(objects)))
            continue
        seen.add(name)
        known = [obj for obj in objects if obj[0] in index]
        for n, *_ in objects:
            if n not in index:
                issues.append(Issue(str(xml_path), f"unknown class '{n}'", objects=1, image=name))
        boxes = np.asarray([obj[1] for obj in known], np.float64).reshape(-1, 4)
        targets = Detections.from_boxes(boxes, [index[obj[0]] for obj in known])
        images.append(ImageRecord(name, width, height, targets, image_id,
                                  difficult=np.array([obj[2] for obj in known], bool),
                                  sources=tuple((str(xml_path), obj[3]) for obj in known)))
    image_root = path / "JPEGImages"
    return DetectionSet(classes, images, image_root if image_root.is_dir() else path, issues)


def _xml(record: ImageRecord, classes: tuple[str, ...]) -> str:
    record = record.select(~record.crowd)  # VOC has no crowd regions: left out, not made objects
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = record.file_name
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(record.width)
    ET.SubElement(size, "height").text = str(record.height)
    ET.SubElement(size, "depth").text = "3"
    for box, label, difficult in zip(record.targets.boxes.astype(np.float64), record.targets.labels,
                                     record.difficult, strict=True):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = classes[label]
        ET.SubElement(obj, "difficult").text = str(int(difficult))
        bnd = ET.SubElement(obj, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), (box[0] + 1, box[1] + 1, box[2], box[3]), strict=True):
            ET.SubElement(bnd, key).text = _number(repr(float(value)))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_voc(dataset: DetectionSet, path: Path) -> Path:
    """Write one XML per image into `path/Annotations` and the class list to labels.txt.

    VOC has no crowd flag: crowd boxes are left out rather than written as objects.
    """
    for record in dataset.images:
        inside(path, record.file_name, folder="Annotations")
    stems = [Path(r.file_name).with_suffix("").as_posix() for r in dataset.images]
    if len(set(stems)) != len(stems):
        raise DataError("VOC needs unique file names without extension; two images share one", path=path)
    for record, stem in zip(dataset.images, stems, strict=True):
        if "/" in stem:
            raise DataError(f"VOC cannot hold images in subfolders ({record.file_name})", path=path)
    for record, stem in zip(dataset.images, stems, strict=True):
        atomic_write_text(inside(path, f"{stem}.xml", folder="Annotations"), _xml(record, dataset.classes))
    atomic_write_text(path / LABELS_FILE, "\n".join(dataset.classes) + "\n")
    return path
