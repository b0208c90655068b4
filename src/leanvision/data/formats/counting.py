"""Counting sets: head points per image, as points.json / points.csv or ShanghaiTech .mat.

Layouts (images always in `images/`):
- `points.json`: {"images": [{"file_name", "width", "height", "points": [[x, y], ...]}]}
- `points.csv`: rows `file_name,x,y`; an image without people has one row with x, y empty.
- ShanghaiTech: `ground-truth/GT_<stem>.mat` with `image_info` -> location (N, 2) x, y.
Points are (x, y) in pixels.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from leanvision.core import DataError, Task
from leanvision.core.io import atomic_path, atomic_write_text
from leanvision.data.formats.common import Issue
from leanvision.data.images import list_images, read_size

POINTS_JSON = "points.json"
POINTS_CSV = "points.csv"
GT_DIR = "ground-truth"


@dataclass(eq=False)
class PointRecord:
    """One image and its head points, (N, 2) float32 x, y in pixels."""

    file_name: str
    width: int
    height: int
    points: np.ndarray


@dataclass(eq=False)
class CountingSet:
    """A counting dataset: images with head points."""

    task: ClassVar[Task] = Task.COUNT  # the task whose sets these are

    images: list[PointRecord]
    image_root: Path
    issues: list[Issue] = field(default_factory=list)

    def image_files(self) -> list[Path]:
        """Every image file of the set, in its order."""
        return [self.image_root / r.file_name for r in self.images]


def _points(value, where: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2), np.float32)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataError(f"points must be a list of [x, y] pairs, got shape {arr.shape}", path=where)
    return arr.astype(np.float32)


def read_points_json(path: Path) -> CountingSet:
    json_path = path / POINTS_JSON
    try:
        data = json.loads(json_path.read_text())
        entries = data["images"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read points JSON: {exc}", path=json_path) from None
    records, issues, seen = [], [], set()
    for entry in entries:
        name = entry.get("file_name")
        if name in seen:
            issues.append(Issue(str(json_path), f"image file {name} is listed twice"))
            continue
        seen.add(name)
        try:
            points = _points(entry.get("points", []), f"{json_path}:{name}")
        except DataError as exc:
            issues.append(Issue(str(json_path), f"{name}: {exc.message}"))
            continue
        records.append(PointRecord(str(name), int(entry.get("width", 0)), int(entry.get("height", 0)), points))
    return CountingSet(records, path / "images", issues)


def write_points_json(dataset: CountingSet, path: Path) -> Path:
    data = {"images": [
        {"file_name": r.file_name, "width": r.width, "height": r.height,
         "count": len(r.points), "points": r.points.astype(np.float64).tolist()}
        for r in dataset.images
    ]}
    atomic_write_text(path / POINTS_JSON, json.dumps(data) + "\n")
    return path


def _size_or_issue(image_path: Path, issues: list[Issue]) -> tuple[int, int]:
    try:
        return read_size(image_path)
    except Exception as exc:
        issues.append(Issue(str(image_path), f"cannot read image size: {exc}"))
        return 0, 0


def read_points_csv(path: Path) -> CountingSet:
    csv_path = path / POINTS_CSV
    issues: list[Issue] = []
    grouped: dict[str, list[list[float]]] = {}
    try:
        rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    except (OSError, csv.Error) as exc:
        raise DataError(f"cannot read points CSV: {exc}", path=csv_path) from None
    for lineno, row in enumerate(rows, start=2):
        name = row.get("file_name")
        if not name:
            issues.append(Issue(f"{csv_path}:{lineno}", "row has no file_name"))
            continue
        points = grouped.setdefault(name, [])
        if row.get("x") in ("", None) and row.get("y") in ("", None):
            continue
        try:
            points.append([float(row["x"]), float(row["y"])])
        except (TypeError, ValueError):
            issues.append(Issue(f"{csv_path}:{lineno}", f"x, y are not numbers: {row.get('x')!r}, {row.get('y')!r}"))
    records = []
    for name, points in grouped.items():
        width, height = _size_or_issue(path / "images" / name, issues)
        records.append(PointRecord(name, width, height, _points(points, str(csv_path))))
    return CountingSet(records, path / "images", issues)


def write_points_csv(dataset: CountingSet, path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file_name", "x", "y"])
    for record in dataset.images:
        if len(record.points) == 0:
            writer.writerow([record.file_name, "", ""])
        for x, y in record.points.astype(np.float64).tolist():
            writer.writerow([record.file_name, repr(x), repr(y)])
    atomic_write_text(path / POINTS_CSV, buffer.getvalue())
    return path


def read_shanghaitech(path: Path) -> CountingSet:
    """ShanghaiTech layout: `images/IMG_1.jpg` with `ground-truth/GT_IMG_1.mat`."""
    import scipy.io

    issues: list[Issue] = []
    records = []
    for image_path in list_images(path / "images"):
        mat_path = path / GT_DIR / f"GT_{image_path.stem}.mat"
        if not mat_path.exists():
            issues.append(Issue(str(image_path), f"no ground truth file {mat_path.name}"))
            continue
        try:
            location = scipy.io.loadmat(mat_path)["image_info"][0, 0][0, 0][0]
            points = _points(location, str(mat_path))
        except (OSError, ValueError, KeyError, IndexError, DataError) as exc:
            issues.append(Issue(str(mat_path), f"cannot read ShanghaiTech ground truth: {exc}"))
            continue
        width, height = _size_or_issue(image_path, issues)
        records.append(PointRecord(image_path.relative_to(path / "images").as_posix(), width, height, points))
    return CountingSet(records, path / "images", issues)


def write_shanghaitech(dataset: CountingSet, path: Path) -> Path:
    """Write `ground-truth/GT_<stem>.mat` per image in ShanghaiTech's struct layout."""
    import scipy.io

    for record in dataset.images:
        info = np.zeros((1, 1), dtype=[("location", "O"), ("number", "O")])
        info[0, 0]["location"] = record.points.astype(np.float64).reshape(-1, 2)
        info[0, 0]["number"] = np.array([[len(record.points)]], dtype=np.float64)
        cell = np.empty((1, 1), dtype=object)
        cell[0, 0] = info
        with atomic_path(path / GT_DIR / f"GT_{Path(record.file_name).stem}.mat") as tmp:
            scipy.io.savemat(tmp, {"image_info": cell})
    return path
