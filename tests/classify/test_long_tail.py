"""`data stats` on a classification set: the head / medium / tail thirds of its classes (the
groups `val` scores), the Gini coefficient, the sorted log-scale plot and the console line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from leanvision.data.stats import dataset_stats, gini
from tests.counting.conftest import run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GROUP_RGB = {"head": (76, 114, 176), "medium": (221, 132, 82), "tail": (196, 78, 82)}  # the plot's colours


def _imagefolder(root: Path, per_class: dict[str, int]) -> Path:
    image = np.full((6, 9, 3), 90, np.uint8)
    for name, count in per_class.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(root / name / f"{i}.png"), image)
    return root


def test_the_classes_split_into_thirds_by_images_with_their_counts(tmp_path):
    # Ranked by images: a 6, b 4, c 4 (tie: b first, lower index), d 2, e 1; five classes
    # split 2 / 2 / 1. Gini of (6, 4, 4, 2, 1): pairwise |differences| sum to 24 over i < j,
    # so 2 * 24 / (2 * 5^2 * mean 3.4) = 48 / 170.
    data = _imagefolder(tmp_path / "set", {"a": 6, "b": 4, "c": 4, "d": 2, "e": 1})
    stats = dataset_stats(data, tmp_path / "out")["dataset"]
    tail = stats["long_tail"]
    assert tail["groups"] == {
        "head": {"classes": 2, "images": 10, "share_of_images": pytest.approx(10 / 17),
                 "min_images_per_class": 4, "max_images_per_class": 6},
        "medium": {"classes": 2, "images": 6, "share_of_images": pytest.approx(6 / 17),
                   "min_images_per_class": 2, "max_images_per_class": 4},
        "tail": {"classes": 1, "images": 1, "share_of_images": pytest.approx(1 / 17),
                 "min_images_per_class": 1, "max_images_per_class": 1},
    }
    assert tail["gini"] == pytest.approx(48 / 170)
    assert tail["head_to_tail_ratio"] == 6 and tail["classes_with_no_samples"] == 0
    written = json.loads((tmp_path / "out" / "stats.json").read_text())["dataset"]["long_tail"]
    assert written["groups"]["medium"]["images"] == 6


def test_the_sorted_plot_shows_each_third_in_its_colour(tmp_path):
    data = _imagefolder(tmp_path / "set", {"a": 30, "b": 9, "c": 3, "d": 1})
    stats = dataset_stats(data, tmp_path / "out")["dataset"]
    assert "images_per_class_sorted.png" in stats["plots"]
    path = tmp_path / "out" / "images_per_class_sorted.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    png = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(int)
    assert png.shape[0] >= 300 and png.shape[1] >= 500
    for group, rgb in GROUP_RGB.items():
        assert (np.abs(png - np.array(rgb)) <= 3).all(axis=2).sum() > 100, f"no {group} bars in the plot"


def test_fewer_classes_than_thirds_leave_the_tail_empty(tmp_path):
    data = _imagefolder(tmp_path / "set", {"a": 3, "b": 3})
    tail = dataset_stats(data, tmp_path / "out")["dataset"]["long_tail"]
    assert [tail["groups"][g]["classes"] for g in ("head", "medium", "tail")] == [1, 1, 0]
    assert tail["groups"]["tail"]["min_images_per_class"] is None
    assert tail["gini"] == 0.0
    assert (tmp_path / "out" / "images_per_class_sorted.png").is_file()


def test_gini_of_equal_and_of_one_sided_classes():
    assert gini(np.array([5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(3 / 4)  # (C - 1) / C
    assert gini(np.array([0, 0])) is None


def test_data_stats_prints_the_long_tail_on_one_line(tmp_path):
    data = _imagefolder(tmp_path / "set", {"a": 6, "b": 4, "c": 4, "d": 2, "e": 1})
    code, out, err = run_cli(["data", "stats", str(data), "--out", str(tmp_path / "out")])
    assert code == 0, err
    lines = [line.strip() for line in out.splitlines() if "long tail:" in line]
    assert lines == ["long tail: head 2 classes (4-6 a class, 59% of images), medium 2 classes (2-4 a class, "
                     "35% of images), tail 1 class (1 a class, 6% of images); imbalance 6x (largest / smallest "
                     "class with images); Gini 0.28"]


def test_data_check_reports_the_long_tail_too(tmp_path):
    import json

    data = _imagefolder(tmp_path / "set", {"a": 6, "b": 4, "c": 4, "d": 2, "e": 1})
    code, out, err = run_cli(["data", "check", str(data)])
    assert code == 0, err
    assert [line.strip() for line in out.splitlines() if "long tail:" in line] == [
        "long tail: head 2 classes (4-6 a class, 59% of images), medium 2 classes (2-4 a class, 35% of images), "
        "tail 1 class (1 a class, 6% of images); imbalance 6x (largest / smallest class with images); Gini 0.28"]
    code, out, _ = run_cli(["data", "check", str(data), "--json", "-"])
    groups = json.loads(out)["datasets"][0]["long_tail"]["groups"]
    assert [groups[g]["classes"] for g in ("head", "medium", "tail")] == [2, 2, 1]
