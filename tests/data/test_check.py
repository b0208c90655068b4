"""`data check` reports every defect of purpose-made bad files, and nothing on clean data."""

from __future__ import annotations

import json
import re
import shutil

import cv2
import numpy as np

from leanvision.data.check import check
from tests.conftest import write_image


def reasons(path) -> list[str]:
    return [str(issue) for report in check(path) for issue in report.issues]


def test_clean_dataset_has_no_problems(tiny_coco):
    (report,) = check(tiny_coco)
    assert report.issues == [] and report.images == 3 and report.objects == 4


def test_every_defect_is_reported_not_just_the_first(tmp_path, tiny_coco):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_coco, bad)
    jpeg = (bad / "images" / "img_1.jpg").read_bytes()
    (bad / "images" / "img_1.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # truncated
    data = json.loads((bad / "annotations.json").read_text())
    data["annotations"][2]["bbox"] = [70, 50, 30, 30]  # outside the 80x60 image 2
    data["annotations"][3]["category_id"] = 99  # unknown class
    data["annotations"].append(dict(data["annotations"][0], id=50, bbox=[5, 5, 0, 7]))  # zero area
    data["annotations"].append(dict(data["annotations"][0], id=50))  # duplicate id
    data["images"][2]["width"] = 51  # size differs from the 50x50 file
    data["images"].append({"id": 4, "file_name": "gone.jpg", "width": 10, "height": 10})
    (bad / "annotations.json").write_text(json.dumps(data))
    found = "\n".join(reasons(bad))
    assert re.search(r"img_1\.jpg: .*truncated", found)
    assert "annotations.json: annotation 3 bbox [70, 50, 30, 30] is outside the 80x60 image (img_2.jpg)" in found
    assert "unknown class id 99" in found
    assert "annotation 50 bbox [5, 5, 0, 7] has zero width (img_1.jpg)" in found
    assert "duplicate annotation id 50" in found
    assert "img_3.jpg: size in the labels is 51x50, the image is 50x50" in found
    assert "gone.jpg: image file is missing" in found


def test_corrupt_and_empty_images(tmp_path, tiny_coco):
    (tiny_coco / "images" / "img_2.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    (tiny_coco / "images" / "img_3.jpg").write_bytes(b"")
    found = "\n".join(reasons(tiny_coco))
    assert re.search(r"img_2\.jpg: (corrupt JPEG|cannot decode|not an image file|the file is corrupt)", found)
    assert "img_3.jpg: image file is empty" in found


def test_folder_of_splits_is_checked_split_by_split(tmp_path, tiny_coco):
    root = tmp_path / "splits"
    shutil.copytree(tiny_coco, root / "train")
    shutil.copytree(tiny_coco, root / "val")
    reports = check(root)
    assert [r.path.split("/")[-1] for r in reports] == ["train", "val"]


def test_segmentation_masks_are_checked(tmp_path):
    root = tmp_path / "seg"
    (root / "masks").mkdir(parents=True)
    write_image(root / "images" / "a.jpg", 32, 16)
    write_image(root / "images" / "b.jpg", 32, 16)
    write_image(root / "images" / "c.jpg", 32, 16)
    good = np.zeros((16, 32), np.uint8)
    good[:4] = 255
    cv2.imwrite(str(root / "masks" / "a.png"), good)
    cv2.imwrite(str(root / "masks" / "b.png"), np.full((16, 32), 7, np.uint8))
    (root / "classes.json").write_text(json.dumps({"classes": ["bg", "car"], "ignore_index": 255}))
    found = "\n".join(reasons(root))
    assert "b.png: mask values [7] are neither classes" in found
    assert "c.jpg: no mask" in found
    assert "a.png" not in found
