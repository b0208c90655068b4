"""Format round-trips: COCO <-> VOC <-> YOLO keep every box, class and negative image."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leanvision.core import DataError, Detections
from leanvision.data.formats import (
    CountingSet,
    DetectionSet,
    Format,
    ImageRecord,
    PointRecord,
    convert_detection,
    detect_format,
    read_dataset,
    read_detection,
    write_detection,
)
from leanvision.data.formats.counting import write_points_csv, write_points_json, write_shanghaitech

# YOLO stores normalised floats; float32 boxes come back within this many pixels.
ROUND_TRIP_ATOL_PX = 1e-3


@st.composite
def detection_sets(draw) -> tuple[tuple[str, ...], list[tuple[int, int, np.ndarray, np.ndarray]]]:
    classes = tuple(f"c{i}" for i in range(draw(st.integers(1, 4))))
    images = []
    for _ in range(draw(st.integers(1, 3))):
        w, h = draw(st.integers(16, 3000)), draw(st.integers(16, 3000))
        n = draw(st.integers(0, 5))
        x1 = draw(st.lists(st.floats(0, w - 2, width=32), min_size=n, max_size=n))
        y1 = draw(st.lists(st.floats(0, h - 2, width=32), min_size=n, max_size=n))
        fw = draw(st.lists(st.floats(0.0625, 1, width=32), min_size=n, max_size=n))
        fh = draw(st.lists(st.floats(0.0625, 1, width=32), min_size=n, max_size=n))
        boxes = np.array(
            [[a, b, a + max(1.0, f * (w - a)), b + max(1.0, g * (h - b))] for a, b, f, g in zip(x1, y1, fw, fh, strict=True)],
            np.float32,
        ).reshape(-1, 4)
        boxes[:, 2] = np.minimum(boxes[:, 2], w)
        boxes[:, 3] = np.minimum(boxes[:, 3], h)
        labels = np.array(draw(st.lists(st.integers(0, len(classes) - 1), min_size=n, max_size=n)), np.int64)
        images.append((w, h, boxes, labels))
    return classes, images


def build(tmp: Path, spec) -> DetectionSet:
    classes, images = spec
    records = []
    for i, (w, h, boxes, labels) in enumerate(images, start=1):
        # A uniform PNG encodes fast at any size; YOLO reads the size from it.
        cv2.imwrite(str(tmp / f"im{i}.png"), np.zeros((h, w), np.uint8))
        records.append(ImageRecord(f"im{i}.png", w, h, Detections.from_boxes(boxes, labels), i))
    return DetectionSet(classes, records, tmp)


def assert_same(a: DetectionSet, b: DetectionSet) -> None:
    assert a.classes == b.classes and not b.issues
    by_name = {r.file_name: r for r in b.images}
    assert sorted(by_name) == sorted(r.file_name for r in a.images)
    for r in a.images:
        other = by_name[r.file_name]
        assert (other.width, other.height) == (r.width, r.height)
        np.testing.assert_array_equal(other.targets.labels, r.targets.labels)
        np.testing.assert_allclose(other.targets.boxes, r.targets.boxes, rtol=0, atol=ROUND_TRIP_ATOL_PX)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=detection_sets())
def test_round_trip_through_every_detection_format(tmp_path_factory, spec):
    tmp = tmp_path_factory.mktemp("rt")
    (tmp / "src").mkdir()
    original = build(tmp / "src", spec)
    write_detection(original, tmp / "coco", Format.COCO)
    convert_detection(tmp / "coco", tmp / "voc", Format.VOC)
    convert_detection(tmp / "voc", tmp / "yolo", Format.YOLO)
    convert_detection(tmp / "yolo", tmp / "back", Format.COCO)
    for step in ("coco", "voc", "yolo", "back"):
        assert_same(original, read_detection(tmp / step))


def test_voc_is_one_based_like_the_original_tools(tmp_path, tiny_coco):
    convert_detection(tiny_coco, tmp_path / "voc", Format.VOC)
    xml = (tmp_path / "voc" / "Annotations" / "img_1.xml").read_text()
    assert "<xmin>3</xmin>" in xml and "<ymin>4</ymin>" in xml and "<xmax>20</xmax>" in xml


def test_negative_images_survive_every_format(tmp_path, tiny_coco):
    convert_detection(tiny_coco, tmp_path / "yolo", Format.YOLO)
    assert (tmp_path / "yolo" / "labels" / "img_3.txt").read_text() == ""
    convert_detection(tmp_path / "yolo", tmp_path / "voc", Format.VOC)
    negatives = [r for r in read_detection(tmp_path / "voc").images if len(r.targets) == 0]
    assert [r.file_name for r in negatives] == ["img_3.jpg"]


def test_coco_category_ids_need_not_be_contiguous(tmp_path, tiny_coco):
    data = json.loads((tiny_coco / "annotations.json").read_text())
    for cat in data["categories"]:
        cat["id"] *= 10
    for ann in data["annotations"]:
        ann["category_id"] *= 10
    (tiny_coco / "annotations.json").write_text(json.dumps(data))
    ds = read_detection(tiny_coco)
    assert ds.classes == ("cell", "debris") and not ds.issues
    assert ds.images[0].targets.labels.tolist() == [0, 1]


def test_format_detection_and_its_errors(tmp_path, tiny_coco):
    assert detect_format(tiny_coco) is Format.COCO
    assert detect_format(tiny_coco / "annotations.json") is Format.COCO
    with pytest.raises(DataError, match="dataset not found"):
        detect_format(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no dataset here"):
        detect_format(tmp_path / "empty")
    with pytest.raises(DataError, match="cannot parse COCO JSON"):
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "annotations.json").write_text("{not json")
        read_detection(tmp_path / "bad")


def test_yolo_reads_classes_txt_and_reports_bad_lines(tmp_path, tiny_coco):
    convert_detection(tiny_coco, tmp_path / "y", Format.YOLO)
    (tmp_path / "y" / "data.yaml").unlink()
    (tmp_path / "y" / "classes.txt").write_text("cell\ndebris\n")
    (tmp_path / "y" / "labels" / "img_3.txt").write_text("7 0.5 0.5 0.1 0.1\nnot a line\n")
    ds = read_detection(tmp_path / "y")
    reasons = sorted(i.reason for i in ds.issues)
    assert any("unknown class id 7" in r for r in reasons)
    assert any("not a YOLO box line" in r for r in reasons)


def points_set(tmp: Path) -> CountingSet:
    records = []
    for i, n in enumerate([0, 3, 17]):
        cv2.imwrite(str(tmp / "images" / f"IMG_{i}.jpg"), np.zeros((40, 60, 3), np.uint8))
        pts = np.random.default_rng(i).uniform(0, 40, (n, 2)).astype(np.float32)
        records.append(PointRecord(f"IMG_{i}.jpg", 60, 40, pts))
    return CountingSet(records, tmp / "images")


@pytest.mark.parametrize("writer", [write_points_json, write_points_csv, write_shanghaitech])
def test_counting_formats_round_trip(tmp_path, writer):
    (tmp_path / "images").mkdir()
    original = points_set(tmp_path)
    writer(original, tmp_path)
    back = read_dataset(tmp_path)
    assert not back.issues
    got = {r.file_name: r for r in back.images}
    for r in original.images:
        np.testing.assert_allclose(got[r.file_name].points, r.points, atol=1e-4)
        assert (got[r.file_name].width, got[r.file_name].height) == (60, 40)
