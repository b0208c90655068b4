"""What the pipeline writes: per image `<stem>.json`, `<stem>.csv`, optional `<stem>.png`,
and `summary.json`. Every file is written atomically (temp file + rename).

`<stem>.json` is COCO-style:

    {"image": "slides/a.jpg", "width": 12000, "height": 12000,
     "detections": [{"bbox": [x, y, w, h], "score": 0.93, "category_id": 1,
                     "category_name": "abnormal"}, ...]}

bbox in full-image pixels (x, y the top-left corner); category_id is the label index + 1,
as in the COCO files `leanvision.data.formats` writes; detections best score first.
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


def write_image_outputs(out_dir: Path, stem: str, result: ImageResult, class_names: Sequence[str],
                        preview: np.ndarray | None) -> None:
    write_json(out_dir / f"{stem}.json", result, class_names)
    write_csv(out_dir / f"{stem}.csv", result, class_names)
    if preview is not None:
        write_preview(out_dir / f"{stem}.png", preview, result)
