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
from leanvision.data.formats.common import Issue, is_number, name_problem, parse_float, size_field
from leanvision.data.formats.detection import COORD_LIMIT_PX
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
    """(N, 2) float32 points from a list of [x, y] pairs; DataError unless every one is two finite numbers."""
    if isinstance(value, np.ndarray):
        arr = value.astype(np.float64) if value.dtype.kind in "iuf" else None
    elif isinstance(value, list) and all(
        isinstance(p, list | tuple) and len(p) == 2 and all(is_number(v) for v in p) for p in value
    ):
        arr = np.asarray(value, np.float64).reshape(-1, 2)
    else:
        arr = None
    if arr is None or (arr.size and (arr.ndim != 2 or arr.shape[1] != 2)):
        shape = getattr(arr, "shape", type(value).__name__)
        raise DataError(f"points must be a list of [x, y] pairs of numbers, got {shape}", path=where)
    if arr.size == 0:
        return np.zeros((0, 2), np.float32)
    if not np.isfinite(arr).all() or np.abs(arr).max() > COORD_LIMIT_PX:
        raise DataError(f"a point is not a finite number within {COORD_LIMIT_PX:g} px", path=where)
    return arr.astype(np.float32)


def _entry(entry: object, where: str) -> PointRecord:
    """One `images` entry of points.json; ValueError saying what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError(f"image entry is not an object: {str(entry)[:80]}")
    name = entry.get("file_name")
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    try:
        points = _points(entry.get("points", []), f"{where}:{name}")
    except DataError as exc:
        raise ValueError(f"{name}: {exc.message}") from None
    return PointRecord(name, size_field(entry.get("width")), size_field(entry.get("height")), points)


def read_points_json(path: Path) -> CountingSet:
    json_path = path / POINTS_JSON
    try:
        data = json.loads(json_path.read_text())
        entries = data["images"]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, RecursionError) as exc:
        raise DataError(f"cannot read points JSON: {exc}", path=json_path) from None
    if not isinstance(entries, list):
        raise DataError("'images' is not a list", path=json_path)
    records, issues, seen = [], [], set()
    for entry in entries:
        try:
            record = _entry(entry, str(json_path))
        except ValueError as exc:
            issues.append(Issue(str(json_path), f"{exc} (image left out)", images=1))
            continue
        if record.file_name in seen:
            issues.append(Issue(str(json_path), f"image file {record.file_name} is listed twice", images=1))
            continue
        seen.add(record.file_name)
        records.append(record)
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
    bad: set[str] = set()  # images with a point that cannot be read: their count is unknown
    try:
        rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read points CSV: {exc}", path=csv_path) from None
    for lineno, row in enumerate(rows, start=2):
        name = row.get("file_name")
        problem = "row has no file_name" if not name else name_problem(name)
        if problem is not None:
            issues.append(Issue(f"{csv_path}:{lineno}", problem, objects=1))
            continue
        points = grouped.setdefault(name, [])
        if row.get("x") in ("", None) and row.get("y") in ("", None):
            continue
        try:
            point = [parse_float(row.get("x")), parse_float(row.get("y"))]
            _points([point], f"{csv_path}:{lineno}")
        except (ValueError, DataError):
            issues.append(Issue(f"{csv_path}:{lineno}", f"x, y are not finite numbers: {row.get('x')!r}, "
                                                       f"{row.get('y')!r} ({name} left out)", images=int(name not in bad)))
            bad.add(name)
            continue
        points.append(point)
    records = []
    for name, points in grouped.items():
        if name in bad:
            continue
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
            issues.append(Issue(str(image_path), f"no ground truth file {mat_path.name}", images=1))
            continue
        try:
            location = scipy.io.loadmat(mat_path)["image_info"][0, 0][0, 0][0]
            points = _points(location, str(mat_path))
        except DataError as exc:
            issues.append(Issue(str(mat_path), f"{exc.message} (image left out)", images=1))
            continue
        except Exception as exc:  # scipy raises many types for damaged files: each is a finding
            issues.append(Issue(str(mat_path), f"cannot read ShanghaiTech ground truth: {exc} (image left out)",
                                images=1))
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
