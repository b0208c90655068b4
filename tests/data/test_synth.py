"""Synthetic datasets: they read back cleanly, are deterministic, and slides stream."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leanvision.core import ConfigError, DataError, Task
from leanvision.data.formats import (
    ClassificationSet,
    CountingSet,
    DetectionSet,
    SegmentationSet,
    find_datasets,
    read_dataset,
)
from leanvision.data.images import read_size, verify_image
from leanvision.data.synth import synthesize
from leanvision.data.synth.common import rng_for
from leanvision.data.synth.cytology import render_region
from leanvision.data.synth.slides import slide_scene

# Small sets: each task's generator runs in well under ten seconds.
SMALL = {
    Task.DETECT: {"images": 8, "slides": 1, "slide_size": 2048},
    Task.COUNT: {"images": 8, "large_images": 1, "large_size": 1024},
    Task.CLASSIFY: {"images": 300},
    Task.SEGMENT: {"images": 8},
}
TINY = {  # for the determinism runs, made three times each
    Task.DETECT: {"images": 2, "slides": 1, "slide_size": 1024},
    Task.COUNT: {"images": 4, "large_images": 1, "large_size": 1024},
    Task.CLASSIFY: {"images": 60, "classes": 20},
    Task.SEGMENT: {"images": 2},
}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[Task, tuple[Path, dict]]:
    """Each task's small dataset, made once for the module: {task: (out dir, summary)}."""
    root = tmp_path_factory.mktemp("synth")
    return {task: (root / task, synthesize(task, root / task, seed=3, **kw)) for task, kw in SMALL.items()}


def _datasets(out: Path) -> dict[str, object]:
    return {path.name: read_dataset(path, fmt) for path, fmt in find_datasets(out)}


def _image_paths(dataset) -> list[Path]:
    if isinstance(dataset, DetectionSet):
        return [dataset.image_path(r) for r in dataset.images]
    if isinstance(dataset, CountingSet):
        return [dataset.image_root / r.file_name for r in dataset.images]
    return [dataset.image_root / rel for rel, _ in dataset.items]


@pytest.mark.parametrize("task", list(Task))
def test_reads_back_without_issues(made, task: Task) -> None:
    out, summary = made[task]
    datasets = _datasets(out)
    assert set(summary["splits"]) == set(datasets)
    for name, dataset in datasets.items():
        assert dataset.issues == [], name
        paths = _image_paths(dataset)
        assert len(paths) == summary["splits"][name]["images"]
        for path in paths:
            assert verify_image(path) is None, path


@pytest.mark.parametrize("task", [Task.DETECT, Task.COUNT])
def test_label_sizes_match_headers(made, task: Task) -> None:
    for dataset in _datasets(made[task][0]).values():
        for record in dataset.images:
            path = dataset.image_root / record.file_name
            assert read_size(path) == (record.width, record.height), path


def test_detect_boxes_negatives_and_sizes(made) -> None:
    train = _datasets(made[Task.DETECT][0])["train"]
    assert train.classes == ("abnormal",)
    counts = [len(r.targets) for r in train.images]
    assert 0 in counts and max(counts) > 0  # negatives stay listed, without annotations
    for record in train.images:
        boxes = record.targets.boxes
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= record.width) and np.all(boxes[:, 3] <= record.height)
        sides = np.concatenate([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]])
        assert np.all((sides >= 30) & (sides <= 130)), sides  # S0's ~40-120 px targets


def test_blood_scene_has_three_classes_far_apart_in_size_and_frequency(tmp_path: Path) -> None:
    """The BCCD-like set: red cells the bulk, one or two white cells an image, small
    platelets; every box inside the 640x480 image; reads back clean; same seed, same bytes."""
    summary = synthesize(Task.DETECT, tmp_path / "a", seed=1, images=12, scene="blood")
    assert summary["classes"] == ["rbc", "wbc", "platelet"] and summary["scene"] == "blood"
    train = _datasets(tmp_path / "a")["train"]
    assert train.issues == [] and train.classes == ("rbc", "wbc", "platelet")
    sides: dict[int, list[float]] = {0: [], 1: [], 2: []}
    labels_all = np.concatenate([r.targets.labels for r in train.images])
    assert np.bincount(labels_all, minlength=3)[0] / len(labels_all) > 0.7  # red cells the bulk (~85 % in BCCD)
    for record in train.images:
        assert (record.width, record.height) == (640, 480)
        boxes, labels = record.targets.boxes, record.targets.labels
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= 640) and np.all(boxes[:, 3] <= 480)
        assert 1 <= int((labels == 1).sum()) <= 2  # white cells: one, sometimes two
        for label in sides:
            inside = (boxes[:, 0] > 0) & (boxes[:, 1] > 0) & (boxes[:, 2] < 640) & (boxes[:, 3] < 480)
            chosen = boxes[(labels == label) & inside]
            sides[label] += list(np.maximum(chosen[:, 2] - chosen[:, 0], chosen[:, 3] - chosen[:, 1]))
    # whole boxes (not cut by the border) keep their class's size
    for label, (low, high) in {0: (60, 100), 1: (105, 175), 2: (14, 32)}.items():
        assert low <= min(sides[label]) and max(sides[label]) <= high, (label, min(sides[label]), max(sides[label]))
    synthesize(Task.DETECT, tmp_path / "b", seed=1, images=12, scene="blood")
    for name in ("train/annotations.json", "train/images/blood_00003.jpg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_count_points_inside_and_empty_images(made) -> None:
    datasets = _datasets(made[Task.COUNT][0])
    assert {"train", "val", "large"} <= set(datasets)
    for dataset in datasets.values():
        for record in dataset.images:
            pts = record.points
            assert np.all((pts >= 0) & (pts < [record.width, record.height]))
    counts = [len(r.points) for r in datasets["train"].images]
    assert 0 in counts and max(counts) >= 100  # gt = 0 images and real crowds
    assert min(max(r.width, r.height) for r in datasets["large"].images) == 1024


def test_classify_long_tail_and_val_coverage(made) -> None:
    datasets: dict[str, ClassificationSet] = _datasets(made[Task.CLASSIFY][0])
    train, val = datasets["train"], datasets["val"]
    assert train.classes == val.classes and len(train.classes) >= 50
    per_class = np.bincount([label for _, label in train.items], minlength=len(train.classes))
    assert per_class.min() >= 1 and per_class.max() / per_class.min() >= 10
    assert set(label for _, label in val.items) == set(range(len(val.classes)))


def test_classify_label_noise_is_counted_and_val_is_clean(made) -> None:
    """About 3 % of training images are filed under another class, half under a brand
    relative; every class keeps its image 0 right; validation is filed right."""
    from leanvision.data.synth import classify

    out, summary = made[Task.CLASSIFY]
    counts = classify.class_counts(3, 300)
    moved = [(label, index, classify.noisy_label(3, label, index, len(counts)))
             for label in range(len(counts)) for index in range(int(counts[label]))]
    wrong = [m for m in moved if m[2] != m[0]]
    assert summary["noisy_train_labels"] == len(wrong) and 0 < len(wrong) <= 0.08 * counts.sum()
    assert all(index > 0 for _, index, _ in wrong)
    train = _datasets(out)["train"]
    per_class = np.bincount([label for _, label in train.items], minlength=len(train.classes))
    expected = counts.copy()
    for label, _, filed in wrong:
        expected[label] -= 1
        expected[filed] += 1
    assert per_class.tolist() == expected.tolist()  # the folders hold what noisy_label says
    val = _datasets(out)["val"]
    assert np.bincount([label for _, label in val.items]).tolist() == classify.val_counts(counts).tolist()


def test_classify_brands_share_the_package() -> None:
    from leanvision.data.synth import classify

    designs = classify.class_designs(0, 12)
    for first in (0, 4, 8):
        brand = designs[first:first + classify.BRAND_SIZE]
        assert len({(d.shape, d.body, d.pattern) for d in brand}) == 1  # same package
        assert len({(d.glyph, d.logo, d.band_color) for d in brand}) == classify.BRAND_SIZE  # other labels
    assert classify.relatives(5, 12) == [4, 6, 7] and classify.relatives(9, 10) == [8]


def test_classify_images_are_elongated(made) -> None:
    train = _datasets(made[Task.CLASSIFY][0])["train"]
    sizes = [read_size(train.image_root / rel) for rel, _ in train.items]
    assert max(max(w, h) / min(w, h) for w, h in sizes) >= 2.5
    assert any(h > w for w, h in sizes) and any(w > h for w, h in sizes)  # tall and wide packages


def test_segment_masks_classes_and_ignore(made) -> None:
    import cv2

    train: SegmentationSet = _datasets(made[Task.SEGMENT][0])["train"]
    assert train.ignore_index == 255 and 4 <= len(train.classes) <= 8
    seen = set()
    for image_rel, mask_rel in train.items:
        mask = cv2.imread(str(train.mask_root / mask_rel), cv2.IMREAD_UNCHANGED)
        assert mask.ndim == 2 and mask.dtype == np.uint8
        assert read_size(train.image_root / image_rel) == (mask.shape[1], mask.shape[0])
        seen |= set(np.unique(mask).tolist())
    assert 255 in seen and seen - {255} <= set(range(len(train.classes)))
    assert len(seen - {255}) == len(train.classes)  # every class appears somewhere


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("task", list(Task))
def test_same_seed_same_bytes(tmp_path: Path, task: Task) -> None:
    first, again, other = (_tree(_make(tmp_path / name, task, seed)) for name, seed in
                           (("a", 5), ("b", 5), ("c", 6)))
    assert first.keys() == again.keys()
    assert all(first[name] == again[name] for name in first)
    images = [name for name in first if name.endswith((".jpg", ".tif"))]
    assert images and all(first[name] != other.get(name) for name in images)


def _make(out: Path, task: Task, seed: int) -> Path:
    synthesize(task, out, seed=seed, **TINY[task])
    return out


def test_more_images_keep_the_first_ones(tmp_path: Path) -> None:
    synthesize(Task.SEGMENT, tmp_path / "few", seed=1, images=2)
    synthesize(Task.SEGMENT, tmp_path / "many", seed=1, images=5)
    name = "train/images/street_00001.jpg"
    assert (tmp_path / "few" / name).read_bytes() == (tmp_path / "many" / name).read_bytes()


def test_slide_pyramid_and_jpeg_agree(made) -> None:
    tifffile = pytest.importorskip("tifffile")
    import cv2

    out = made[Task.DETECT][0] / "slides"
    slides = read_dataset(out)
    by_name = {r.file_name: r for r in slides.images}
    tif, jpg = by_name["slide_000.tif"], by_name["slide_000.jpg"]
    assert tif.targets.equals(jpg.targets) and len(tif.targets) >= 3
    assert read_size(out / "images" / tif.file_name) == read_size(out / "images" / jpg.file_name) == (2048, 2048)
    with tifffile.TiffFile(out / "images" / tif.file_name) as handle:
        levels = handle.series[0].levels
        assert len(levels) >= 2 and min(levels[-1].shape[:2]) <= 1000
        assert (handle.pages[0].tilewidth, handle.pages[0].tilelength) == (512, 512)
        half = levels[1].asarray()
    from_jpeg = cv2.cvtColor(cv2.imread(str(out / "images" / jpg.file_name)), cv2.COLOR_BGR2RGB)
    from_jpeg = cv2.resize(from_jpeg, half.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(half.astype(np.int16) - from_jpeg).mean() < 3


def test_slide_opens_in_openslide(made) -> None:
    openslide = pytest.importorskip("openslide")
    with openslide.OpenSlide(made[Task.DETECT][0] / "slides" / "images" / "slide_000.tif") as slide:
        assert slide.dimensions == (2048, 2048) and slide.level_count >= 2


def test_regions_render_without_seams() -> None:
    """A region rendered whole equals the same region rendered as four tiles."""
    scene = slide_scene(rng_for(0, "detect", "slides", 0), 2048)
    scene = dataclasses.replace(scene, stain=dataclasses.replace(scene.stain, noise=0.0))
    rng = np.random.default_rng(0)
    whole = render_region(scene, 512, 512, 512, 512, rng)
    parts = np.zeros_like(whole)
    for y in (0, 256):
        for x in (0, 256):
            parts[y:y + 256, x:x + 256] = render_region(scene, 512 + x, 512 + y, 256, 256, rng)
    assert np.abs(whole.astype(np.int16) - parts).max() <= 1  # SIMD loop tails may round apart


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"task": Task.DETECT, "images": 0}, ConfigError),
    ({"task": Task.DETECT, "slides": 1, "slide_size": 999}, ConfigError),
    ({"task": Task.DETECT, "slides": 1, "slide_size": 70000}, ConfigError),
    ({"task": Task.COUNT, "slides": 1}, ConfigError),
    ({"task": Task.DETECT, "large_images": 2}, ConfigError),
    ({"task": Task.CLASSIFY, "images": 10}, ConfigError),  # fewer than the 200 classes
    ({"task": Task.CLASSIFY, "images": 10, "classes": 20}, ConfigError),
    ({"task": Task.CLASSIFY, "classes": 1}, ConfigError),
    ({"task": Task.DETECT, "classes": 5}, ConfigError),
    ({"task": Task.DETECT, "scene": "street"}, ConfigError),
    ({"task": Task.COUNT, "scene": "blood"}, ConfigError),
    ({"task": Task.DETECT, "scene": "blood", "slides": 1}, ConfigError),
    ({"task": "boxes"}, ConfigError),
    ({"task": Task.SEGMENT, "seed": -1}, ConfigError),
])
def test_bad_arguments_are_one_line_errors(tmp_path: Path, kwargs: dict, error: type) -> None:
    with pytest.raises(error) as info:
        synthesize(out=tmp_path / "x", **kwargs)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x").exists()  # refused before writing anything


def test_rerun_replaces_its_own_output(tmp_path: Path) -> None:
    synthesize(Task.COUNT, tmp_path, images=1, large_images=1, large_size=1024)
    summary = synthesize(Task.SEGMENT, tmp_path, images=2)
    assert not (tmp_path / "large").exists()  # nothing stale from the earlier run is left
    assert len(list((tmp_path / "train" / "images").iterdir())) == 2
    assert json.loads((tmp_path / "synth.json").read_text())["splits"] == summary["splits"]


def test_foreign_dataset_needs_overwrite(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "mine.jpg").write_bytes(b"not ours")
    with pytest.raises(DataError, match="train/"):
        synthesize(Task.SEGMENT, tmp_path, images=1)
    assert (tmp_path / "train" / "mine.jpg").exists()
    synthesize(Task.SEGMENT, tmp_path, images=1, overwrite=True)
    assert not (tmp_path / "train" / "mine.jpg").exists()


def test_progress_reaches_every_total(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    synthesize(Task.DETECT, tmp_path, images=2, slides=1, slide_size=1024,
               progress=lambda stage, done, total: calls.append((stage, done, total)))
    last = {stage: (done, total) for stage, done, total in calls}
    assert set(last) == {"train", "val", "slide_000"}
    assert all(done == total for done, total in last.values())


_SLIDE_CHILD = """
import json, sys
from pathlib import Path
from leanvision.core.resources import peak_rss_mb
from leanvision.data.synth.slides import write_slides
write_slides(Path(sys.argv[1]), 1, int(sys.argv[2]), seed=0, progress=None)
print(json.dumps({"rss_mb": peak_rss_mb()}))
"""


@pytest.mark.slow
def test_slide_writing_streams(tmp_path: Path) -> None:
    """A 16000 px slide (768 MB of pixels) is written in a fraction of that memory."""
    pytest.importorskip("pyvips")
    size = 16000
    result = subprocess.run([sys.executable, "-c", _SLIDE_CHILD, str(tmp_path), str(size)],
                            capture_output=True, text=True, check=True, timeout=600)
    rss_mb = json.loads(result.stdout.strip().splitlines()[-1])["rss_mb"]
    raw_mb = size * size * 3 / 2**20
    assert rss_mb < raw_mb / 2, f"peak RSS {rss_mb:.0f} MB for {raw_mb:.0f} MB of pixels"
    assert read_size(tmp_path / "images" / "slide_000.jpg") == (size, size)
