"""Broken inputs a user tried (issue 18): no crash, no write outside DST, no silent loss.

Each test builds one bad input from the clean `tiny_coco` set (3 images, 2 boxes on image 1,
none on image 3) and runs the commands a user would: `data check`, `data convert`, `data stats`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from leanvision.core import DataError, Detections
from leanvision.core.errors import plural
from leanvision.data.formats import (
    DetectionSet,
    Format,
    ImageRecord,
    convert_detection,
    read_dataset,
    read_detection,
    write_detection,
)
from leanvision.data.formats.classification import (
    ClassificationSet,
    read_imagefolder,
    write_imagefolder,
)
from leanvision.data.formats.counting import write_shanghaitech
from tests.conftest import write_image
from tests.helpers import run_cli


def edit_coco(root: Path, change) -> Path:
    data = json.loads((root / "annotations.json").read_text())
    change(data)
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def files_under(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


def assert_no_crash(path: Path, tmp: Path, *, problem: str) -> None:
    """`check` reports `problem` (exit 1), `convert` refuses it (exit 2, nothing written),
    `stats` describes the readable part and names what it left out (exit 1)."""
    code, out, err = run_cli(["data", "check", str(path)])
    assert code == 1 and problem in out, (out, err)
    code, out, err = run_cli(["data", "convert", str(path), str(tmp / "dst"), "--to", "yolo"])
    assert code == 2 and "nothing written" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp / "dst").exists()
    assert_stats_leave_out(path, tmp, problem)


def assert_stats_leave_out(path: Path, tmp: Path, problem: str) -> None:
    """`data stats` describes the readable part, names each problem on stderr, exits 1."""
    code, out, err = run_cli(["data", "stats", str(path), "--out", str(tmp / "stats")])
    assert code == 1 and f"left out: {path}" in err and problem in err, (out, err)
    (stats,) = json.loads((tmp / "stats" / "stats.json").read_text()).values()
    assert f"left out: {plural(len(stats['left_out']), 'problem')} (listed above" in out
    assert any(problem in line for line in stats["left_out"])


# --- 1. nothing is written outside DST ---------------------------------------------------------

def test_convert_refuses_a_file_name_that_escapes_dst(tmp_path, tiny_coco):
    edit_coco(tiny_coco, lambda d: d["images"][0].update(file_name="../../escape/x.jpg"))
    work = tmp_path / "work"
    work.mkdir()
    code, _, err = run_cli(["data", "convert", str(tiny_coco), str(work / "out" / "dst"), "--to", "yolo"])
    assert code == 2 and "'../../escape/x.jpg'" in err and "nothing written" in err
    assert files_under(work) == []
    code, out, _ = run_cli(["data", "check", str(tiny_coco)])
    assert code == 1 and "'../../escape/x.jpg' leads outside the dataset folder" in out


@pytest.mark.parametrize("fmt", [Format.COCO, Format.VOC, Format.YOLO])
@pytest.mark.parametrize("name", ["../x.png", "/tmp/abs/x.png", "a/../../x.png", "..\\x.png"])
def test_every_writer_refuses_an_escaping_name_before_writing(tmp_path, fmt, name):
    write_image(tmp_path / "src" / "ok.png", 8, 8)
    records = [ImageRecord("ok.png", 8, 8, Detections.from_boxes(np.array([[1, 1, 4, 4]]), [0]), 1),
               ImageRecord(name, 8, 8, Detections.empty(), 2)]
    with pytest.raises(DataError, match="nothing written"):
        write_detection(DetectionSet(("a",), records, tmp_path / "src"), tmp_path / "out" / "dst", fmt)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("fmt", "folder"), [(Format.COCO, "images"), (Format.YOLO, "labels"),
                                             (Format.VOC, "Annotations")])
def test_writers_refuse_a_symlink_leading_out_of_dst(tmp_path, fmt, folder):
    write_image(tmp_path / "src" / "ok.png", 8, 8)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / folder).symlink_to(tmp_path / "elsewhere")
    record = ImageRecord("ok.png", 8, 8, Detections.from_boxes(np.array([[1, 1, 4, 4]]), [0]), 1)
    with pytest.raises(DataError, match="symlink"):
        write_detection(DetectionSet(("a",), [record], tmp_path / "src"), tmp_path / "dst", fmt)
    assert files_under(tmp_path / "elsewhere") == []


def test_an_image_symlink_leading_out_of_the_source_is_a_problem_never_copied(tmp_path, tiny_coco):
    outside = tmp_path / "out2.jpg"
    (tiny_coco / "images" / "img_2.jpg").rename(outside)
    (tiny_coco / "images" / "img_2.jpg").symlink_to(Path("..", "..", "out2.jpg"))
    code, out, _ = run_cli(["data", "check", str(tiny_coco)])
    assert code == 1 and "img_2.jpg: image file leads outside the dataset folder through a symlink" in out
    code, _, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "dst"), "--to", "yolo"])
    assert code == 2 and "leads outside the dataset folder through a symlink" in err
    assert not (tmp_path / "dst").exists()
    code, out, _ = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "dst"), "--to", "yolo", "--skip-bad"])
    assert code == 1 and "left out: 1 image, 2 objects" in out
    assert files_under(tmp_path / "dst" / "images") == ["img_1.jpg", "img_3.jpg"]
    assert not any(p.is_symlink() for p in (tmp_path / "dst").rglob("*"))


def test_writers_place_an_images_bytes_never_a_copied_symlink(tmp_path, tiny_coco):
    """A symlink inside the dataset is fine, and DST gets the file it names, not the link
    (os.link on Linux links a symlink itself: a relative one would dangle in DST)."""
    (tiny_coco / "store").mkdir()
    (tiny_coco / "images" / "img_2.jpg").rename(tiny_coco / "store" / "img_2.jpg")
    (tiny_coco / "images" / "img_2.jpg").symlink_to(Path("..", "store", "img_2.jpg"))
    assert run_cli(["data", "check", str(tiny_coco)])[0] == 0
    for fmt in ("coco", "voc", "yolo"):
        code, _, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / f"to_{fmt}"), "--to", fmt])
        assert code == 0, err
        (placed,) = (tmp_path / f"to_{fmt}").rglob("img_2.jpg")
        assert not placed.is_symlink() and placed.read_bytes() == (tiny_coco / "store" / "img_2.jpg").read_bytes()


def test_a_symlink_dst_is_refused_in_one_line_leaving_nothing(tmp_path, tiny_coco):
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "link"
    link.symlink_to("target")  # dangling
    code, _, err = run_cli(["data", "convert", str(tiny_coco), str(link), "--to", "yolo"])
    assert code == 2 and err.count("\n") == 1 and "the output path is a symlink (to 'target')" in err, err
    (tmp_path / "out" / "target").mkdir()  # a folder behind the link: refused the same way
    code, _, err = run_cli(["data", "convert", str(tiny_coco), str(link), "--to", "yolo"])
    assert code == 2 and "is a symlink" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["link", "target"]
    assert link.is_symlink() and files_under(tmp_path / "out" / "target") == []


def test_imagefolder_writer_refuses_a_class_that_escapes(tmp_path):
    write_image(tmp_path / "src" / "a" / "x.png", 8, 8)
    dataset = ClassificationSet(("..",), [("a/x.png", 0)], tmp_path / "src")
    with pytest.raises(DataError, match="nothing written"):
        write_imagefolder(dataset, tmp_path / "dst")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "dst").exists()


def test_imagefolder_writer_refuses_two_images_landing_on_one_file(tmp_path):
    # Nested folders of one class (cat/day/x.png, cat/night/x.png) are read as two images; the
    # writer flattens each class, so it must refuse rather than keep one and drop the other.
    for sub, seed in (("day", 1), ("night", 2)):
        write_image(tmp_path / "src" / "cat" / sub / "x.png", 8, 8, seed=seed)
    dataset = read_imagefolder(tmp_path / "src")
    assert len(dataset.items) == 2
    with pytest.raises(DataError, match="nothing written") as info:
        write_imagefolder(dataset, tmp_path / "dst")
    assert "cat/day/x.png" in str(info.value) and "cat/night/x.png" in str(info.value)
    assert not (tmp_path / "dst").exists()


# --- 2. every numeric field is validated at read time ------------------------------------------

@pytest.mark.parametrize("bbox", [["a", 1, 2, 3], [float("nan"), 3, 18, 27], [2, 3, float("inf"), 27],
                                  [True, 3, 18, 27], "2,3,18,27", [2, 3, 18], [[2], 3, 18, 27], [2, 3, 1e300, 27],
                                  [10**400, 3, 18, 27]])
def test_coco_bad_bbox_is_a_problem_not_a_crash(tmp_path, tiny_coco, bbox):
    edit_coco(tiny_coco, lambda d: d["annotations"][0].update(bbox=bbox))
    assert_no_crash(tiny_coco, tmp_path, problem="annotation 1 ")
    dataset = read_detection(tiny_coco)
    assert dataset.num_objects == 3 and np.isfinite(dataset.images[0].targets.boxes).all()


@pytest.mark.parametrize(("field", "value"), [("width", "wide"), ("height", float("inf")), ("id", [1]),
                                              ("width", -5), ("file_name", None),
                                              pytest.param("height", 10**400, id="height-huge-int")])
def test_coco_bad_image_entry_is_a_problem_not_a_crash(tmp_path, tiny_coco, field, value):
    edit_coco(tiny_coco, lambda d: d["images"][1].update({field: value}))
    assert_no_crash(tiny_coco, tmp_path, problem="annotations.json")


@pytest.mark.parametrize(("tag", "value"), [("xmin", "nan"), ("ymax", "inf"), ("xmax", "abc"), ("width", "inf"),
                                            ("difficult", "maybe")])
def test_voc_bad_number_is_a_problem_not_a_crash(tmp_path, tiny_coco, tag, value):
    convert_detection(tiny_coco, tmp_path / "voc", Format.VOC)
    xml = tmp_path / "voc" / "Annotations" / "img_1.xml"
    text = xml.read_text()
    start, end = text.index(f"<{tag}>") + len(tag) + 2, text.index(f"</{tag}>")
    xml.write_text(text[:start] + value + text[end:])
    assert_no_crash(tmp_path / "voc", tmp_path, problem="img_1.xml")


@pytest.mark.parametrize("line", ["0 nan 0.5 0.1 0.1", "0 0.5 inf 0.1 0.1", "1 0.5 0.5 1e300 0.1"])
def test_yolo_bad_number_is_a_problem_not_a_crash(tmp_path, tiny_coco, line):
    convert_detection(tiny_coco, tmp_path / "yolo", Format.YOLO)
    (tmp_path / "yolo" / "labels" / "img_3.txt").write_text(line + "\n")
    assert_no_crash(tmp_path / "yolo", tmp_path, problem="img_3.txt:1")


@pytest.mark.parametrize(("line", "reason"), [("0.5 0.5 0.5 0.1 0.1", "class id is not a whole number: '0.5'"),
                                            ("cat 0.5 0.5 0.1 0.1", "class id is not a whole number: 'cat'")])
def test_yolo_bad_class_id_is_said_in_plain_words(tmp_path, tiny_coco, line, reason):
    convert_detection(tiny_coco, tmp_path / "yolo", Format.YOLO)
    (tmp_path / "yolo" / "labels" / "img_3.txt").write_text(line + "\n")
    code, out, _ = run_cli(["data", "check", str(tmp_path / "yolo")])
    assert code == 1 and f"img_3.txt:1: not a YOLO box line: {line!r} ({reason})" in out
    assert "int()" not in out


def test_yolo_binary_label_file_and_bad_data_yaml(tmp_path, tiny_coco):
    convert_detection(tiny_coco, tmp_path / "yolo", Format.YOLO)
    (tmp_path / "yolo" / "labels" / "img_3.txt").write_bytes(b"\xff\xfe\x00garbage")
    assert_no_crash(tmp_path / "yolo", tmp_path, problem="img_3.txt: cannot read the label file")
    (tmp_path / "yolo" / "data.yaml").write_text("- just\n- a list\n")
    code, _, err = run_cli(["data", "check", str(tmp_path / "yolo")])
    assert code == 2 and "data.yaml" in err


def counting_set(tmp: Path) -> Path:
    for i in range(2):
        write_image(tmp / "images" / f"IMG_{i}.png", 8, 8)
    return tmp


@pytest.mark.parametrize("points", [[[float("nan"), 1]], [["a", 1]], [[1, 2], [3]], [[1, float("inf")]], "1,2",
                                    [[10**400, 1]]])
def test_points_json_bad_point_is_a_problem(tmp_path, points):
    root = counting_set(tmp_path / "set")
    entries = [{"file_name": "IMG_0.png", "width": 8, "height": 8, "points": points},
               {"file_name": "IMG_1.png", "width": 8, "height": 8, "points": [[1, 1]]}]
    (root / "points.json").write_text(json.dumps({"images": entries}))
    assert_counting_problem(root, tmp_path, "points.json")


def test_points_csv_nan_is_a_problem(tmp_path):
    root = counting_set(tmp_path / "set")
    (root / "points.csv").write_text("file_name,x,y\nIMG_0.png,nan,1\nIMG_1.png,1,1\n")
    assert_counting_problem(root, tmp_path, "points.csv:2")


def test_shanghaitech_nan_is_a_problem(tmp_path):
    root = counting_set(tmp_path / "set")
    from leanvision.data.formats import CountingSet, PointRecord

    records = [PointRecord("IMG_0.png", 8, 8, np.array([[np.nan, 1.0]], np.float32)),
               PointRecord("IMG_1.png", 8, 8, np.array([[1.0, 1.0]], np.float32))]
    write_shanghaitech(CountingSet(records, root / "images"), root)
    assert_counting_problem(root, tmp_path, "GT_IMG_0.mat")


def assert_counting_problem(root: Path, tmp: Path, where: str) -> None:
    dataset = read_dataset(root)
    assert len(dataset.images) == 1 and any(where in str(i) for i in dataset.issues)
    code, out, _ = run_cli(["data", "check", str(root)])
    assert code == 1 and where in out
    assert_stats_leave_out(root, tmp, where)


# --- 3. convert: the clean whole, or nothing, or an exact account -------------------------------

def test_coco_without_categories_is_refused(tmp_path, tiny_coco):
    edit_coco(tiny_coco, lambda d: d.pop("categories"))
    code, _, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "dst"), "--to", "yolo"])
    assert code == 2 and "no 'categories' list" in err and not (tmp_path / "dst").exists()


def test_missing_image_is_refused_or_accounted_for(tmp_path, tiny_coco):
    (tiny_coco / "images" / "img_2.jpg").unlink()
    code, _, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "dst"), "--to", "yolo"])
    assert code == 2 and "img_2.jpg: image file is missing" in err and not (tmp_path / "dst").exists()
    code, out, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "dst"), "--to", "yolo", "--skip-bad"])
    assert code == 1
    assert f"{tmp_path / 'dst'}: 2 images, 2 objects as yolo" in out
    assert "left out: 1 image, 2 objects (1 problem, listed above)" in out and "img_2.jpg: image file is missing" in err
    assert files_under(tmp_path / "dst" / "labels") == ["img_1.txt", "img_3.txt"]


@pytest.mark.parametrize(("bbox", "reason"), [([70, 50, 30, 30], "is outside the 80x60 image"),
                                              ([10, 5, -4, 20], "has negative width")])
def test_bad_box_is_refused_or_dropped_never_written(tmp_path, tiny_coco, bbox, reason):
    edit_coco(tiny_coco, lambda d: d["annotations"][2].update(bbox=bbox))  # image 2, 80x60
    code, _, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "dst"), "--to", "yolo"])
    assert code == 2 and reason in err
    code, out, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "dst"), "--to", "yolo", "--skip-bad"])
    assert code == 1 and "3 images, 3 objects" in out and "left out: 0 images, 1 object" in out and reason in err
    values = np.loadtxt(tmp_path / "dst" / "labels" / "img_2.txt", ndmin=2)[:, 1:]
    assert len(values) == 1 and (values >= 0).all() and (values <= 1).all()


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("file_name", "../../escape/x.jpg", "leads outside the dataset folder"),
    ("file_name", "/tmp/abs/x.jpg", "is an absolute path"),
    ("file_name", "a\\b.jpg", "holds a backslash"),
    ("file_name", None, "file name must be a non-empty string"),
    ("width", "wide", "image 1 (img_1.jpg): width: not a number: 'wide'"),
])
def test_an_image_entry_left_out_counts_its_objects(tmp_path, tiny_coco, field, value, reason):
    edit_coco(tiny_coco, lambda d: d["images"][0].update({field: value}))  # image 1: 2 objects
    code, out, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "acc"), "--to", "coco", "--skip-bad"])
    assert code == 1 and reason in err, err
    assert "2 images, 2 objects as coco" in out and "left out: 1 image, 2 objects (1 problem" in out


def test_a_voc_file_left_out_counts_its_objects(tmp_path, tiny_coco):
    convert_detection(tiny_coco, tmp_path / "voc", Format.VOC)
    xml = tmp_path / "voc" / "Annotations" / "img_1.xml"
    xml.write_text(xml.read_text().replace("<filename>img_1.jpg</filename>", "<filename>../../x</filename>"))
    code, out, err = run_cli(["data", "convert", str(tmp_path / "voc"), str(tmp_path / "acc"), "--to", "coco",
                              "--skip-bad"])
    assert code == 1 and "'../../x' leads outside the dataset folder" in err
    assert "2 images, 2 objects as coco" in out and "left out: 1 image, 2 objects (1 problem" in out


def test_labels_stating_the_wrong_image_size_are_refused(tmp_path, tiny_coco):
    edit_coco(tiny_coco, lambda d: d["images"][0].update(width=128, height=96))
    code, _, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "dst"), "--to", "yolo"])
    assert code == 2 and "size in the labels is 128x96, the image is 64x48" in err


def test_size_unknown_to_the_labels_is_read_from_the_image(tmp_path, tiny_coco):
    edit_coco(tiny_coco, lambda d: [im.pop("width") for im in d["images"]])
    convert_detection(tiny_coco, tmp_path / "dst", Format.YOLO)
    first = np.loadtxt(tmp_path / "dst" / "labels" / "img_1.txt", ndmin=2)[0]
    np.testing.assert_allclose(first[1:], [11 / 64, 16.5 / 48, 18 / 64, 27 / 48], atol=1e-6)


def test_dst_is_a_previous_conversion_replaced_whole_or_refused(tmp_path, tiny_coco):
    dst = tmp_path / "dst"
    convert_detection(tiny_coco, dst, Format.YOLO)
    assert len(files_under(dst / "labels")) == 3
    edit_coco(tiny_coco, lambda d: d.update(images=d["images"][:1],
                                            annotations=[a for a in d["annotations"] if a["image_id"] == 1]))
    convert_detection(tiny_coco, dst, Format.YOLO)  # a previous conversion: replaced, no stale label left
    assert files_under(dst / "labels") == ["img_1.txt"] and files_under(dst / "images") == ["img_1.jpg"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code, _, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "mine"), "--to", "yolo"])
    assert code == 2 and "not a previous conversion" in err and "'notes.txt'" in err
    assert files_under(tmp_path / "mine") == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_malformed_voc_xml_is_refused_or_counted(tmp_path, tiny_coco):
    convert_detection(tiny_coco, tmp_path / "voc", Format.VOC)
    (tmp_path / "voc" / "Annotations" / "img_2.xml").write_text("<annotation><object>")
    code, _, err = run_cli(["data", "convert", str(tmp_path / "voc"), str(tmp_path / "dst"), "--to", "coco"])
    assert code == 2 and "img_2.xml: cannot parse VOC XML" in err
    code, out, _ = run_cli(["data", "convert", str(tmp_path / "voc"), str(tmp_path / "dst"), "--to", "coco",
                            "--skip-bad"])
    assert code == 1 and "2 images, 2 objects as coco" in out and "left out: 1 image, 0 objects" in out


def test_crowd_and_difficult_are_kept_and_written_where_the_format_can(tmp_path, tiny_coco):
    edit_coco(tiny_coco, lambda d: d["annotations"][0].update(iscrowd=1))
    dataset = read_detection(tiny_coco)
    assert dataset.images[0].crowd.tolist() == [True, False]
    convert_detection(tiny_coco, tmp_path / "coco1", Format.COCO)
    assert read_detection(tmp_path / "coco1").images[0].crowd.tolist() == [True, False]
    code, out, err = run_cli(["data", "convert", str(tiny_coco), str(tmp_path / "yolo"), "--to", "yolo"])
    assert code == 0 and "3 images, 3 objects as yolo" in out
    assert "left out: 1 crowd box: yolo cannot mark them" in err
    assert (tmp_path / "yolo" / "labels" / "img_1.txt").read_text().count("\n") == 1

    voc = tmp_path / "voc"
    convert_detection(tmp_path / "coco1", voc, Format.VOC)  # the crowd box is left out
    xml = voc / "Annotations" / "img_1.xml"
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>"))
    assert read_detection(voc).images[0].difficult.tolist() == [True]
    convert_detection(voc, tmp_path / "voc2", Format.VOC)
    assert "<difficult>1</difficult>" in (tmp_path / "voc2" / "Annotations" / "img_1.xml").read_text()
    convert_detection(voc, tmp_path / "coco2", Format.COCO)
    assert read_detection(tmp_path / "coco2").images[0].difficult.tolist() == [True]


# --- 4. check shows boxes as the file writes them ------------------------------------------------

def test_check_shows_boxes_as_written_and_counts_in_words(tmp_path, tiny_coco):
    edit_coco(tiny_coco, lambda d: d["annotations"][1].update(bbox=[10, 5, -4, 20]))
    code, out, _ = run_cli(["data", "check", str(tiny_coco)])
    assert code == 1 and "3 images, 4 objects, 1 problem\n" in out
    assert "annotations.json: annotation 2 bbox [10, 5, -4, 20] has negative width (img_1.jpg)" in out

    convert_detection(tiny_coco, tmp_path / "voc", Format.VOC, skip_bad=True)
    xml = tmp_path / "voc" / "Annotations" / "img_1.xml"
    xml.write_text(xml.read_text().replace("<xmax>20</xmax>", "<xmax>70</xmax>"))
    code, out, _ = run_cli(["data", "check", str(tmp_path / "voc")])
    assert "img_1.xml: object 0 'cell' [3, 4, 70, 30] is outside the 64x48 image (img_1.jpg)" in out

    convert_detection(tiny_coco, tmp_path / "yolo", Format.YOLO, skip_bad=True)
    (tmp_path / "yolo" / "labels" / "img_3.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 -0.1 0.2\n")
    code, out, _ = run_cli(["data", "check", str(tmp_path / "yolo")])
    assert "img_3.txt:2: box [0.5 0.5 -0.1 0.2] (normalised cx cy w h) has negative width (img_3.jpg)" in out
    assert "2 problems" not in out and "1 problem\n" in out


# --- an image with a box that could not be read is left out whole where it is scored or learned ---


def _partly_read(fmt: Format, tmp_path: Path, tiny_coco: Path) -> Path:
    """The tiny set in `fmt` with one of img_1's two boxes unreadable (img_2 intact)."""
    if fmt is Format.COCO:
        return edit_coco(tiny_coco, lambda d: d["annotations"][0].update(bbox=[float("nan"), 3, 18, 27]))
    convert_detection(tiny_coco, tmp_path / fmt.value, fmt)
    if fmt is Format.YOLO:
        labels = tmp_path / "yolo" / "labels" / "img_1.txt"
        labels.write_text("0 nan 0.5 0.1 0.1\n" + labels.read_text().splitlines()[1] + "\n")
    else:
        xml = tmp_path / "voc" / "Annotations" / "img_1.xml"
        text = xml.read_text()
        start = text.index("<xmin>") + len("<xmin>")
        xml.write_text(text[:start] + "nan" + text[text.index("</xmin>"):])
    return tmp_path / fmt.value


@pytest.mark.parametrize("fmt", [Format.COCO, Format.YOLO, Format.VOC])
def test_an_image_missing_a_box_is_left_out_of_evaluation_and_training(tmp_path, tiny_coco, fmt):
    """Scored with one of its boxes missing, img_1 would count a right detection as a false
    positive; trained on, it would teach the object as background. Both leave it out whole
    and say so; img_2 and the negative img_3 stay."""
    from leanvision.data.labelled import read_detection_set
    from leanvision.training.data import load_split

    path = _partly_read(fmt, tmp_path, tiny_coco)
    dataset, left = read_detection(path).without_partly_read()
    assert sorted(r.file_name for r in dataset.images) == ["img_2.jpg", "img_3.jpg"]
    assert len(left) == 1 and left[0].path.endswith("img_1.jpg") and (left[0].images, left[0].objects) == (1, 1)
    assert "left out whole: 1 of its 2 boxes could not be read" in left[0].reason
    labelled = read_detection_set(path)
    assert [p.name for p in labelled.files] == ["img_2.jpg", "img_3.jpg"]
    assert any("left out whole" in issue.reason for issue in labelled.issues)
    trained, skipped = load_split(path, split="train", workers=1)
    assert sorted(r.file_name for r in trained.images) == ["img_2.jpg", "img_3.jpg"]
    assert any("left out whole" in issue.reason for issue in skipped)
