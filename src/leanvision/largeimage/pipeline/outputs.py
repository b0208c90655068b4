"""What the pipeline writes: per image `<stem>.json`, `<stem>.csv`, optional `<stem>.png`,
and `summary.json`; for a counting model `<stem>.json`, optional `<stem>.npy` (the density
map) and `<stem>.png` (a heat map). Every file is written atomically (temp file + rename).

Detection: `<stem>.json` is COCO-style:

    {"image": "slides/a.jpg", "width": 12000, "height": 12000,
     "detections": [{"bbox": [x, y, w, h], "score": 0.93, "category_id": 1,
                     "category_name": "abnormal"}, ...]}

bbox in full-image pixels (x, y the top-left corner); category_id is the label index + 1,
as in the COCO files `leanvision.data.formats` writes; detections best score first.

Counting: `<stem>.json` holds the count (the sum of the stitched density map) and the map's
geometry; `<stem>.npy` (with `PipelineOptions.density`) the (H', W') float32 map itself,
cell (i, j) covering image pixels [j * sx, (j + 1) * sx) x [i * sy, (i + 1) * sy):

    {"image": "crowds/a.jpg", "width": 2048, "height": 1536, "count": 1234.56, "tiles": 4,
     "density": {"shape": [192, 256], "stride": [8.0, 8.0], "file": "a.npy"}}
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.classes import ClassProbs
from leanvision.core.density import DensityMap
from leanvision.core.detections import Detections
from leanvision.core.io import atomic_path, atomic_write_text

CSV_COLUMNS = ("x", "y", "width", "height", "score", "category_id", "category_name")


@dataclass(frozen=True)
class ImageResult:
    """The merged detections of one image.

    Attributes:
        path: the image file as given.
        width, height: image size in level-0 pixels (after EXIF orientation).
        detections: (N, 4) xyxy boxes in full-image pixels, scores, labels; best first.
        tiles: model inputs the image was cut into.
    """

    path: Path
    width: int
    height: int
    detections: Detections
    tiles: int


@dataclass(frozen=True)
class CountResult:
    """The stitched density map of one image (counting models).

    Attributes:
        path: the image file as given.
        width, height: image size in level-0 pixels (after EXIF orientation).
        density: the whole image's density map, strides in image pixels.
        tiles: model inputs the image was cut into.
    """

    path: Path
    width: int
    height: int
    density: DensityMap
    tiles: int

    @property
    def count(self) -> float:
        return self.density.count


@dataclass(frozen=True)
class ClassifyResult:
    """The class scores of one image (classifiers: the whole image, one model input).

    Attributes:
        path: the image file as given.
        width, height: image size in level-0 pixels (after EXIF orientation).
        probs: its `ClassProbs` (with the card's class names).
        tiles: model inputs (1).
    """

    path: Path
    width: int
    height: int
    probs: ClassProbs
    tiles: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"image": str(self.path), "width": self.width, "height": self.height, **self.probs.to_dict()}


def write_classify_json(path: Path, result: ClassifyResult) -> None:
    atomic_write_text(path, json.dumps(result.to_dict(), indent=1) + "\n")


def _rows(dets: Detections, class_names: Sequence[str]) -> list[dict[str, Any]]:
    order = np.argsort(-dets.scores, kind="stable")
    boxes, scores, labels = dets.boxes[order].astype(np.float64), dets.scores[order], dets.labels[order]
    return [
        {
            "bbox": [round(float(b[0]), 2), round(float(b[1]), 2), round(float(b[2] - b[0]), 2), round(float(b[3] - b[1]), 2)],
            "score": round(float(s), 5),
            "category_id": int(label) + 1,
            "category_name": class_names[label] if 0 <= label < len(class_names) else str(int(label)),
        }
        for b, s, label in zip(boxes, scores, labels, strict=True)
    ]


def image_json(result: ImageResult, class_names: Sequence[str]) -> dict[str, Any]:
    return {
        "image": os.fspath(result.path),
        "width": result.width,
        "height": result.height,
        "detections": _rows(result.detections, class_names),
    }


def write_json(path: Path, result: ImageResult, class_names: Sequence[str]) -> None:
    atomic_write_text(path, json.dumps(image_json(result, class_names), indent=1) + "\n")


def write_csv(path: Path, result: ImageResult, class_names: Sequence[str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in _rows(result.detections, class_names):
        writer.writerow([*row["bbox"], row["score"], row["category_id"], row["category_name"]])
    atomic_write_text(path, buffer.getvalue())


def write_preview(path: Path, preview: np.ndarray, result: ImageResult) -> None:
    """The downscaled image (H x W x 3 uint8 RGB) with the boxes drawn, as PNG."""
    import cv2

    canvas = np.ascontiguousarray(preview[..., ::-1])  # cv2 draws and writes BGR
    scale = np.array([preview.shape[1] / result.width, preview.shape[0] / result.height] * 2)
    thickness = max(1, round(max(preview.shape[:2]) / 500))
    for box in np.round(result.detections.boxes * scale).astype(np.int64):
        cv2.rectangle(canvas, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])), (0, 0, 255), thickness)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), canvas):
            raise OSError(f"cannot write preview {path}")


def count_json(result: CountResult, density_file: str | None = None) -> dict[str, Any]:
    """A counting image's JSON: the count and the density map's shape, stride and file."""
    return {
        "image": os.fspath(result.path),
        "width": result.width,
        "height": result.height,
        "count": round(result.count, 3),
        "tiles": result.tiles,
        "density": {"shape": list(result.density.shape), "stride": [round(s, 4) for s in result.density.stride],
                    "file": density_file},
    }


def write_count_json(path: Path, result: CountResult, density_file: str | None = None) -> None:
    atomic_write_text(path, json.dumps(count_json(result, density_file), indent=1) + "\n")


def write_density(path: Path, result: CountResult) -> None:
    """The (H', W') float32 density map as a `.npy` file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, result.density.density)


def write_heatmap(path: Path, preview: np.ndarray, result: CountResult) -> None:
    """The downscaled image (H x W x 3 uint8 RGB) under its density as a JET heat map, with
    the count written in the corner, as PNG. Colours are relative to the densest cell."""
    import cv2

    height, width = preview.shape[:2]
    rows, cols = result.density.cells_covering(result.width, result.height)
    density = result.density.density[:rows, :cols]
    scaled = cv2.resize(density, (width, height), interpolation=cv2.INTER_LINEAR)
    peak = float(scaled.max())
    levels = np.clip(scaled / peak * 255 if peak > 0 else scaled * 0, 0, 255).astype(np.uint8)
    heat = cv2.applyColorMap(levels, cv2.COLORMAP_JET)
    canvas = cv2.addWeighted(np.ascontiguousarray(preview[..., ::-1]), 0.5, heat, 0.5, 0.0)
    text_scale = max(0.5, max(height, width) / 1000)
    cv2.putText(canvas, f"count {result.count:.1f}", (8, round(30 * text_scale)), cv2.FONT_HERSHEY_SIMPLEX,
                text_scale, (255, 255, 255), max(1, round(2 * text_scale)), cv2.LINE_AA)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), canvas):
            raise OSError(f"cannot write preview {path}")


def write_count_outputs(out_dir: Path, stem: str, result: CountResult, preview: np.ndarray | None, *,
                        density: bool) -> None:
    """`<stem>.json`, and `<stem>.npy` if `density`, and `<stem>.png` if there is a preview."""
    density_file = f"{stem}.npy" if density else None
    if density_file is not None:
        write_density(out_dir / density_file, result)
    write_count_json(out_dir / f"{stem}.json", result, density_file)
    if preview is not None:
        write_heatmap(out_dir / f"{stem}.png", preview, result)


def write_image_outputs(out_dir: Path, stem: str, result: ImageResult, class_names: Sequence[str],
                        preview: np.ndarray | None) -> None:
    write_json(out_dir / f"{stem}.json", result, class_names)
    write_csv(out_dir / f"{stem}.csv", result, class_names)
    if preview is not None:
        write_preview(out_dir / f"{stem}.png", preview, result)
