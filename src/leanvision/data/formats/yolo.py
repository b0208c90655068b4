"""YOLO txt labels: `labels/<stem>.txt` beside `images/`, class names in `data.yaml`.

Each line is `class cx cy w h`, normalised by the image size, which YOLO files do not
store: it is read from the image header. Written with full float precision so that boxes
round-trip to float32 (to ~1e-6 px). `data.yaml` follows Ultralytics (`names: {0: ...}`);
a plain `classes.txt` is read too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from leanvision.core import DataError, Detections
from leanvision.core.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from leanvision.core.io import atomic_write_text
from leanvision.data.formats.common import Issue, inside, parse_float
from leanvision.data.formats.detection import DetectionSet, ImageRecord, box_values_problem
from leanvision.data.images import list_images, read_size


def _read_classes(path: Path) -> tuple[str, ...]:
    data_yaml = path / "data.yaml"
    if data_yaml.exists():
        import yaml

        try:
            data = yaml.safe_load(data_yaml.read_text())
        except (yaml.YAMLError, OSError, UnicodeDecodeError, RecursionError) as exc:
            raise DataError(f"cannot parse YAML: {exc}", path=data_yaml) from None
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict) and all(isinstance(k, int) and not isinstance(k, bool) for k in names):
            if sorted(names) != list(range(len(names))):
                raise DataError(f"'names' keys must be 0..{len(names) - 1}, got {sorted(names)}", path=data_yaml)
            return tuple(str(names[k]) for k in sorted(names))
        if isinstance(names, list):
            return tuple(str(n) for n in names)
        raise DataError("no 'names' list or mapping of class ids 0..C-1", path=data_yaml)
    classes_txt = path / "classes.txt"
    if classes_txt.exists():
        try:
            text = classes_txt.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read the class list: {exc}", path=classes_txt) from None
        return tuple(line.strip() for line in text.splitlines() if line.strip())
    raise DataError("YOLO dataset has neither data.yaml nor classes.txt", path=path)


def _class_id(text: str) -> int:
    """A YOLO class id (a whole number as written: '3', not '3.0'); ValueError in plain words."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"class id is not a whole number: {text!r}") from None


def _parse_lines(txt: Path, lines: list[str], size: tuple[int, int], num_classes: int, issues: list[Issue],
                 image: str) -> tuple[list[int], list[list[float]], list[tuple[str, str]]]:
    """Labels, xyxy pixel boxes and (file:line, line as written) of the box lines of `txt`,
    the labels of the set's file `image`."""
    labels, boxes, sources = [], [], []
    issues_before = len(issues)
    width, height = size
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where, fields = f"{txt}:{lineno}", line.split()
        try:
            label, values = _class_id(fields[0]), [parse_float(v) for v in fields[1:]]
        except ValueError as exc:
            issues.append(Issue(where, f"not a YOLO box line: {line.strip()[:80]!r} ({exc})", objects=1))
            continue
        if len(fields) != 5:
            issues.append(Issue(where, f"expected 5 fields (class cx cy w h), got {len(fields)}: {line.strip()[:80]!r}",
                                objects=1))
            continue
        if not 0 <= label < num_classes:
            issues.append(Issue(where, f"unknown class id {label} (classes: 0..{num_classes - 1})", objects=1))
            continue
        xyxy = (cxcywh_to_xyxy(np.asarray([values], np.float64)) * np.array([width, height] * 2, np.float64))[0]
        problem = box_values_problem(values) or box_values_problem(xyxy.tolist())
        if problem is not None:
            issues.append(Issue(where, f"box {' '.join(fields[1:])} {problem}", objects=1))
            continue
        labels.append(label)
        boxes.append(xyxy.tolist())
        sources.append((where, f"box [{' '.join(fields[1:])}] (normalised cx cy w h)"))
    issues[issues_before:] = [dataclasses.replace(issue, image=image) for issue in issues[issues_before:]]
    return labels, boxes, sources


def _read_lines(txt: Path, issues: list[Issue]) -> list[str] | None:
    """The lines of a label file ([] if absent), None (and an issue) if it cannot be read."""
    if not txt.exists():
        return []
    try:
        return txt.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        issues.append(Issue(str(txt), f"cannot read the label file: {exc} (image left out)", images=1))
        return None


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
        lines = _read_lines(txt, issues)
        if lines is None:
            continue
        try:
            width, height = read_size(image_path)
        except Exception as exc:  # the image is reported by check; its boxes cannot be placed
            issues.append(Issue(str(image_path), f"cannot read image size: {exc}"))
            width = height = 0
        labels, boxes, sources = _parse_lines(txt, lines, (width, height), len(classes), issues, rel.as_posix())
        xyxy = np.asarray(boxes, np.float64).reshape(-1, 4)
        images.append(ImageRecord(rel.as_posix(), width, height, Detections.from_boxes(xyxy, labels), image_id,
                                  sources=tuple(sources)))
    for txt in sorted(label_dir.rglob("*.txt")):
        if txt.relative_to(label_dir).with_suffix("").as_posix() not in image_stems:
            issues.append(Issue(str(txt), "label file has no image"))
    return DetectionSet(classes, images, image_dir, issues)


def write_yolo(dataset: DetectionSet, path: Path) -> Path:
    """Write `labels/<stem>.txt` per image (empty for negatives) and `data.yaml`.

    YOLO has no crowd or difficult flag: such boxes are left out (as Ultralytics' COCO
    converter leaves out crowd boxes) rather than written as ordinary objects.
    """
    import yaml

    label_files = []
    for record in dataset.images:
        if record.width <= 0 or record.height <= 0:
            raise DataError(f"YOLO labels need the image size, which is unknown ({record.file_name})", path=path)
        inside(path, record.file_name, folder="labels")
        label_files.append(inside(path, Path(record.file_name).with_suffix(".txt").as_posix(), folder="labels"))
    for record, txt in zip(dataset.images, label_files, strict=True):
        record = record.select(~(record.crowd | record.difficult))
        scale = np.array([record.width, record.height, record.width, record.height], np.float64)
        norm = xyxy_to_cxcywh(record.targets.boxes.astype(np.float64)) / scale
        lines = [
            " ".join([str(label), *(repr(float(v)) for v in box)])
            for label, box in zip(record.targets.labels.tolist(), norm, strict=True)
        ]
        atomic_write_text(txt, "".join(line + "\n" for line in lines))
    data = {"path": ".", "train": "images", "val": "images",
            "names": dict(enumerate(dataset.classes))}
    atomic_write_text(path / "data.yaml", yaml.safe_dump(data, sort_keys=False))
    return path
