"""Property tests of every format reader and writer on random and adversarial label files.

Each example builds a tiny set (8x8 PNGs) in a fresh folder. Reading may return issues or
raise `DataError`, nothing else; `check` never crashes; a conversion (with --skip-bad) writes
only inside DST; and a valid set reads back equal after writing.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leanvision.core import DataError, Detections
from leanvision.data.check import check
from leanvision.data.formats import (
    ClassificationSet,
    CountingSet,
    DetectionSet,
    Format,
    ImageRecord,
    PointRecord,
    convert_detection,
    read_dataset,
    write_detection,
)
from leanvision.data.formats.classification import write_imagefolder
from leanvision.data.formats.counting import write_points_csv, write_points_json
from leanvision.data.formats.segmentation import SegmentationSet, write_classes

FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])
IMAGES = ("a.png", "b.png")

# Any JSON value, NaN and infinities included (Python's json reads and writes them), and
# integers too large for a float (JSON has no limit on digits).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.sampled_from([10**400, -10**400]) | st.floats()
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
numbers = st.one_of(st.floats(-20, 40), st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 0]),
                    st.integers(-20, 40))
names = st.sampled_from([*IMAGES, "../a.png", "../../x/b.png", "/tmp/abs.png", "sub/../../a.png", "", ".",
                         "a\\b.png", "c.png"]) | json_values
tokens = st.sampled_from(["0", "1", "7", "-1", "0.5", "0.25", "1.5", "nan", "inf", "-inf", "1e308", "x", "1,2"])


def images(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in IMAGES:
        cv2.imwrite(str(root / name), np.full((8, 8), 128, np.uint8))
    return root


def tree(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


def read_or_refuse(path: Path):
    """The set, or None if the reader refused it with a DataError (the only refusal allowed)."""
    try:
        return read_dataset(path)
    except DataError:
        return None


def assert_convert_stays_inside(tmp: Path, src: Path) -> None:
    """Check and convert never crash; whatever happens, nothing appears outside DST."""
    before = tree(tmp)
    with contextlib.suppress(DataError):
        check(src)
    for fmt in (Format.COCO, Format.VOC, Format.YOLO):
        with contextlib.suppress(DataError):
            convert_detection(src, tmp / "out" / fmt, fmt, skip_bad=True)
    assert {p for p in tree(tmp) - before if p != "out" and not p.startswith(("out/coco", "out/voc", "out/yolo"))} \
        == set()


@st.composite
def coco_files(draw) -> dict:
    entries = [{"id": draw(st.integers(0, 3) | json_values), "file_name": draw(names),
                "width": draw(st.just(8) | json_values), "height": draw(st.just(8) | json_values)}
               for _ in range(draw(st.integers(0, 3)))]
    anns = [{"id": draw(st.integers(0, 5) | json_values), "image_id": draw(st.integers(0, 3) | json_values),
             "category_id": draw(st.sampled_from([1, 2, 9]) | json_values),
             "bbox": draw(st.lists(numbers, min_size=4, max_size=4) | json_values),
             "iscrowd": draw(st.sampled_from([0, 1]) | json_values)}
            for _ in range(draw(st.integers(0, 4)))]
    data = {"images": entries, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    if draw(st.booleans()):
        data[draw(st.sampled_from(["images", "annotations", "categories"]))] = draw(json_values)
    return data


@FUZZ
@given(data=coco_files())
def test_random_coco_never_crashes_nor_writes_outside(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("coco")
    images(tmp / "src" / "images")
    (tmp / "src" / "annotations.json").write_text(json.dumps(data))
    dataset = read_or_refuse(tmp / "src")
    if dataset is not None:
        assert all(np.isfinite(r.targets.boxes).all() for r in dataset.images)
    assert_convert_stays_inside(tmp, tmp / "src")


@FUZZ
@given(name=names.filter(lambda n: isinstance(n, str)), values=st.lists(tokens | st.text(max_size=4), min_size=7,
                                                                         max_size=7), garbage=st.binary(max_size=30))
def test_random_voc_never_crashes_nor_writes_outside(tmp_path_factory, name, values, garbage):
    tmp = tmp_path_factory.mktemp("voc")
    images(tmp / "src" / "JPEGImages")
    (tmp / "src" / "Annotations").mkdir()
    w, h, x1, y1, x2, y2, difficult = values
    xml = (f"<annotation><filename>{name}</filename><size><width>{w}</width><height>{h}</height></size>"
           f"<object><name>a</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
           f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object></annotation>")
    (tmp / "src" / "Annotations" / "a.xml").write_text(xml)
    (tmp / "src" / "Annotations" / "b.xml").write_bytes(garbage)
    read_or_refuse(tmp / "src")
    assert_convert_stays_inside(tmp, tmp / "src")


@FUZZ
@given(lines=st.lists(st.lists(tokens, min_size=0, max_size=6).map(" ".join), max_size=4),
       names_yaml=st.sampled_from(["names: [a, b]", "names: {0: a, 1: b}", "names: {1: a}", "- x", "names: 3",
                                   "names: {a: 1}", ": ["]))
def test_random_yolo_never_crashes_nor_writes_outside(tmp_path_factory, lines, names_yaml):
    tmp = tmp_path_factory.mktemp("yolo")
    images(tmp / "src" / "images")
    (tmp / "src" / "labels").mkdir()
    (tmp / "src" / "labels" / "a.txt").write_text("\n".join(lines))
    (tmp / "src" / "data.yaml").write_text(names_yaml)
    dataset = read_or_refuse(tmp / "src")
    if dataset is not None:
        assert all(np.isfinite(r.targets.boxes).all() for r in dataset.images)
    assert_convert_stays_inside(tmp, tmp / "src")


@FUZZ
@given(entries=st.lists(st.fixed_dictionaries({"file_name": names, "points": json_values | st.lists(
    st.lists(numbers, min_size=2, max_size=2), max_size=3), "width": st.just(8) | json_values}), max_size=3),
       rows=st.lists(st.tuples(names.filter(lambda n: isinstance(n, str) and "\n" not in n), tokens, tokens),
                     max_size=4))
def test_random_points_never_crash(tmp_path_factory, entries, rows):
    tmp = tmp_path_factory.mktemp("points")
    images(tmp / "json" / "images")
    (tmp / "json" / "points.json").write_text(json.dumps({"images": entries}))
    images(tmp / "csv" / "images")
    (tmp / "csv" / "points.csv").write_text("file_name,x,y\n" + "".join(f'"{n}",{x},{y}\n' for n, x, y in rows))
    for root in (tmp / "json", tmp / "csv"):
        dataset = read_or_refuse(root)
        if dataset is not None:
            assert all(np.isfinite(r.points).all() for r in dataset.images)
            check(root)


@FUZZ
@given(meta=json_values | st.fixed_dictionaries({"classes": json_values, "ignore_index": json_values}),
       values=st.lists(st.integers(0, 255), min_size=1, max_size=4))
def test_random_masks_never_crash(tmp_path_factory, meta, values):
    tmp = tmp_path_factory.mktemp("masks")
    images(tmp / "images")
    (tmp / "masks").mkdir()
    mask = np.resize(np.asarray(values, np.uint8), (8, 8))
    cv2.imwrite(str(tmp / "masks" / "a.png"), mask)
    (tmp / "classes.json").write_text(json.dumps(meta))
    with contextlib.suppress(DataError):
        check(tmp)


@FUZZ
@given(classes=st.lists(st.text(max_size=6) | st.sampled_from(["..", "../x", "/abs", "a/b"]), min_size=1, max_size=3))
def test_imagefolder_writer_never_writes_outside(tmp_path_factory, classes):
    tmp = tmp_path_factory.mktemp("folder")
    images(tmp / "src")
    before = tree(tmp)
    dataset = ClassificationSet(tuple(classes), [(name, i % len(classes)) for i, name in enumerate(IMAGES)], tmp / "src")
    with contextlib.suppress(DataError, OSError):  # OSError: a name the filesystem refuses (NUL, too long)
        write_imagefolder(dataset, tmp / "out" / "dst")
    assert {p for p in tree(tmp) - before if not p.startswith("out/dst") and p != "out"} == set()


# Names a folder or file may have on Linux: no "/" nor NUL, not "." or "..", at most 20 characters.
path_parts = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1,
                     max_size=20).filter(lambda n: n not in (".", ".."))
folder_entries = st.tuples(
    st.sampled_from(["png", "bytes", "empty", "subdir", "link_in", "link_out", "dir_link_out"]),
    path_parts | st.sampled_from([".hidden.png", "a.png", "b.JPG", "x.txt", "noext", "c.png.tmp"]),
    st.binary(max_size=20),
)


@FUZZ
@given(classes=st.lists(st.tuples(path_parts | st.sampled_from([".hid", "_x", "a b", "ü"]),
                                  st.lists(folder_entries, max_size=4)), max_size=3))
def test_random_imagefolder_never_crashes_nor_writes_outside(tmp_path_factory, classes):
    """The ImageFolder reader on random trees (odd names, non-images, empty and hidden folders,
    nested folders, symlinks in and out): a set or a DataError; check never crashes; the set it
    reads writes back inside DST only (or is refused, nothing lost silently) and reads back the same."""
    from leanvision.data.formats.classification import read_imagefolder
    tmp = tmp_path_factory.mktemp("folder")
    outside = images(tmp / "outside")
    root = tmp / "src"
    root.mkdir()
    for class_name, entries in classes:
        folder = root / class_name
        folder.mkdir(exist_ok=True)
        for kind, name, garbage in entries:
            target = folder / name
            if target.exists() or target.is_symlink():
                continue
            if kind == "png":
                cv2.imwrite(str(folder / "tmp.png"), np.full((8, 8), 7, np.uint8))
                (folder / "tmp.png").rename(target)
            elif kind == "subdir":
                target.mkdir()
                cv2.imwrite(str(target / "s.png"), np.full((8, 8), 9, np.uint8))
            elif kind == "link_in":
                target.symlink_to(folder)  # a loop back to its own folder
            elif kind == "link_out":
                target.symlink_to(outside / "a.png")
            elif kind == "dir_link_out":
                target.symlink_to(outside)
            else:
                target.write_bytes(b"" if kind == "empty" else garbage)
    before = tree(tmp)
    try:
        dataset = read_imagefolder(root)
    except DataError:
        dataset = None
    if dataset is not None:
        assert all(0 <= label < len(dataset.classes) for _, label in dataset.items)
        assert all((root / name).is_file() for name, _ in dataset.items)
        with contextlib.suppress(DataError):
            check(root)
        written = None
        with contextlib.suppress(DataError):
            written = write_imagefolder(dataset, tmp / "out" / "dst")
        if written is not None and dataset.items:
            back = read_imagefolder(written)
            assert sorted(back.items) == sorted(
                (f"{dataset.classes[label]}/{Path(name).name}", back.classes.index(dataset.classes[label]))
                for name, label in dataset.items)
    assert {p for p in tree(tmp) - before if p != "out" and not p.startswith("out/dst")} == set()


# --- valid sets round-trip losslessly ------------------------------------------------------------

@st.composite
def valid_detection_sets(draw) -> tuple[tuple[str, ...], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    classes = tuple(f"c{i}" for i in range(draw(st.integers(1, 3))))
    per_image = []
    for _ in IMAGES:
        n = draw(st.integers(0, 4))
        xy = np.array(draw(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=n, max_size=n)),
                      np.float32).reshape(-1, 2)
        wh = np.array(draw(st.lists(st.tuples(st.integers(1, 2), st.integers(1, 2)), min_size=n, max_size=n)),
                      np.float32).reshape(-1, 2)
        labels = np.array(draw(st.lists(st.integers(0, len(classes) - 1), min_size=n, max_size=n)), np.int64)
        flags = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
        per_image.append((np.concatenate([xy, xy + wh], axis=1), labels, flags))
    return classes, per_image


def detection_set(root: Path, classes, per_image, flag: str | None) -> DetectionSet:
    records = [ImageRecord(name, 8, 8, Detections.from_boxes(boxes, labels), i + 1,
                           **({flag: flags} if flag else {}))
               for i, (name, (boxes, labels, flags)) in enumerate(zip(IMAGES, per_image, strict=True))]
    return DetectionSet(classes, records, root)


@FUZZ
@given(spec=valid_detection_sets())
def test_valid_detection_sets_round_trip(tmp_path_factory, spec):
    tmp = tmp_path_factory.mktemp("rt")
    images(tmp / "src")
    # Each format with the flag it can hold: COCO iscrowd, VOC difficult, YOLO none.
    for fmt, flag in ((Format.COCO, "crowd"), (Format.VOC, "difficult"), (Format.YOLO, None)):
        original = detection_set(tmp / "src", *spec, flag)
        write_detection(original, tmp / fmt, fmt)
        first = read_dataset(tmp / fmt)
        convert_detection(tmp / fmt, tmp / f"{fmt}2", fmt)
        for back in (first, read_dataset(tmp / f"{fmt}2")):
            assert back.classes == original.classes and not back.issues
            for a, b in zip(original.images, sorted(back.images, key=lambda r: r.file_name), strict=True):
                assert (a.file_name, a.width, a.height) == (b.file_name, b.width, b.height)
                np.testing.assert_array_equal(b.targets.labels, a.targets.labels)
                np.testing.assert_allclose(b.targets.boxes, a.targets.boxes, rtol=0, atol=1e-5)
                np.testing.assert_array_equal(b.crowd, a.crowd)
                np.testing.assert_array_equal(b.difficult, a.difficult)


@FUZZ
@given(counts=st.lists(st.integers(0, 4), min_size=2, max_size=2), seed=st.integers(0, 2**16))
def test_valid_counting_and_segmentation_sets_round_trip(tmp_path_factory, counts, seed):
    tmp = tmp_path_factory.mktemp("rtc")
    rng = np.random.default_rng(seed)
    records = [PointRecord(name, 8, 8, rng.uniform(0, 8, (n, 2)).astype(np.float32))
               for name, n in zip(IMAGES, counts, strict=True)]
    for writer in (write_points_json, write_points_csv):
        root = tmp / writer.__name__
        images(root / "images")
        writer(CountingSet(records, root / "images"), root)
        back = read_dataset(root)
        assert not back.issues and [r.file_name for r in back.images] == list(IMAGES)
        for a, b in zip(records, back.images, strict=True):
            np.testing.assert_array_equal(b.points, a.points)
    seg = tmp / "seg"
    images(seg / "images")
    images(seg / "masks")
    classes = tuple(f"k{i}" for i in range(counts[0] + 1))
    write_classes(SegmentationSet(classes, [], seg / "images", seg / "masks", ignore_index=200 + counts[1]), seg)
    back = read_dataset(seg)
    assert back.classes == classes and back.ignore_index == 200 + counts[1] and len(back.items) == 2
