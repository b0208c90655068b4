"""Counting augmentations keep the count: points move with the pixels, the density target is
drawn after, and its sum is the number of heads in the sample. The torch dataset is
deterministic and substitutes unreadable images."""

from __future__ import annotations

import numpy as np
import pytest

from leanvision.core import ConfigError, DataError, ResizeMode
from leanvision.data.augment.counting import (
    RandomCrop,
    RandomFlip,
    RandomScale,
    build_count_augmentation,
    crop_points,
    fit_points,
    flip_points,
)
from leanvision.data.density import density_target
from leanvision.data.formats import read_dataset
from leanvision.data.torch_counting import CountingDataset


def _scene(seed: int = 0, h: int = 60, w: int = 80, n: int = 50):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    points = np.concatenate([rng.uniform([0, 0], [w, h], (n - 3, 2)), [[0, 0], [w, h], [w - 0.01, 0]]])
    return image, points.astype(np.float32)


def _target_sum(image: np.ndarray, points: np.ndarray) -> float:
    h, w = image.shape[:2]
    return float(density_target(points, h, w, stride=8).sum(dtype=np.float64))


OPS = [
    RandomCrop(height=40, width=50),
    RandomCrop(height=90, width=100),  # larger than the image: padded, every head kept
    RandomScale(min_scale=0.4, max_scale=1.7),
    RandomFlip(horizontal=1.0, vertical=1.0),
    build_count_augmentation([{"op": "photometric_jitter"}]),
    build_count_augmentation([{"op": "random_scale"}, {"op": "random_crop", "height": 32, "width": 48},
                              {"op": "random_flip"}]),
]


@pytest.mark.parametrize("op", OPS, ids=["crop", "crop_padded", "scale", "flip", "photometric", "composed"])
def test_every_augmentation_keeps_points_inside_and_the_density_sum(op):
    image, points = _scene()
    for seed in range(8):
        out, moved = op(image, points, np.random.default_rng(seed))
        h, w = out.shape[:2]
        assert moved.dtype == np.float32 and moved.shape[1] == 2
        assert ((moved >= 0) & (moved <= [w, h])).all()
        assert _target_sum(out, moved) == pytest.approx(len(moved), abs=1e-3)


def test_crop_keeps_exactly_the_points_inside_the_window():
    image, points = _scene()
    patch, kept = crop_points(image, points, 10, 5, 30, 20)
    inside = (points[:, 0] >= 10) & (points[:, 0] < 40) & (points[:, 1] >= 5) & (points[:, 1] < 25)
    np.testing.assert_allclose(kept, points[inside] - [10, 5])
    np.testing.assert_array_equal(patch, image[5:25, 10:40])


def test_a_crop_larger_than_the_image_pads_and_keeps_every_head():
    image, points = _scene()
    out, kept = RandomCrop(height=90, width=100, fill=7)(image, points, np.random.default_rng(3))
    assert out.shape == (90, 100, 3) and len(kept) == len(points)
    assert (out == 7).all(axis=2).sum() == 90 * 100 - 60 * 80


def test_flip_mirrors_points_with_the_pixels():
    image = np.zeros((10, 20, 3), np.uint8)
    image[2, 3] = 255  # pixel covering [3, 4) x [2, 3): a head at its centre (3.5, 2.5)
    out, moved = flip_points(image, np.array([[3.5, 2.5]]), horizontal=True, vertical=True)
    x, y = moved[0]
    assert (x, y) == (16.5, 7.5) and out[int(y), int(x)].max() == 255


def test_scale_moves_points_by_the_exact_size_ratio():
    image, points = _scene()
    out, moved = RandomScale(min_scale=0.5, max_scale=0.5)(image, points, np.random.default_rng(0))
    assert out.shape == (30, 40, 3)
    np.testing.assert_allclose(moved, points * 0.5, rtol=1e-6)


def test_fit_points_letterbox_matches_the_image_resize():
    image, points = _scene(h=60, w=80)
    out, moved = fit_points(image, points, 64, 64, mode=ResizeMode.LETTERBOX)
    assert out.shape == (64, 64, 3)
    np.testing.assert_allclose(moved, points * [64 / 80, 48 / 60], rtol=1e-6)


def test_output_size_is_the_last_crop_unless_rescaled_after_it():
    def size(*steps):
        return build_count_augmentation(list(steps)).output_size

    crop = {"op": "random_crop", "height": 32, "width": 48}
    assert size({"op": "random_scale"}, crop, {"op": "random_flip"}, {"op": "photometric_jitter"}) == (32, 48)
    assert size(crop, {"op": "random_scale"}) is None
    assert size({"op": "random_flip"}) is None
    assert size(crop, {"op": "random_crop", "height": 16, "width": 16}) == (16, 16)


def test_bad_steps_are_config_errors_with_hints():
    with pytest.raises(ConfigError, match=r"unknown op 'random_crap'.*did you mean 'random_crop'"):
        build_count_augmentation([{"op": "random_crap"}])
    with pytest.raises(ConfigError, match=r"random_crop.*missing required key 'height'"):
        build_count_augmentation([{"op": "random_crop", "width": 3}])
    with pytest.raises(ConfigError, match="min_scale"):
        build_count_augmentation([{"op": "random_scale", "min_scale": 2.0, "max_scale": 1.0}])


def test_dataset_targets_sum_to_the_sample_count_and_are_deterministic(blob_data):
    dataset = read_dataset(blob_data / "train")
    augment = build_count_augmentation([{"op": "random_scale", "min_scale": 0.6, "max_scale": 1.4},
                                        {"op": "random_crop", "height": 48, "width": 64}, {"op": "random_flip"}])
    torch_set = CountingDataset(dataset, augment=augment, input_size=(48, 64), seed=3)
    again = CountingDataset(dataset, augment=augment, input_size=(48, 64), seed=3)
    for index in range(len(torch_set)):
        image, target, source = torch_set[index]
        assert image.shape == (3, 48, 64) and target["density"].shape == (1, 6, 8)
        assert float(target["density"].sum()) == pytest.approx(float(target["count"]), abs=1e-3)
        assert float(target["count"]) == len(target["points"]) <= len(dataset.images[source].points)
        image2, target2, _ = again[index]
        assert (image == image2).all() and (target["density"] == target2["density"]).all()
    torch_set.set_epoch(1)
    assert any((torch_set[i][0] != again[i][0]).any() for i in range(len(torch_set)))


def test_without_augmentation_every_head_is_kept(blob_data):
    dataset = read_dataset(blob_data / "train")
    torch_set = CountingDataset(dataset, augment=None, input_size=(64, 64), seed=0, resize=ResizeMode.LETTERBOX)
    for index, record in enumerate(dataset.images):
        _, target, source = torch_set[index]
        assert source == index and float(target["density"].sum()) == pytest.approx(len(record.points), abs=1e-3)


def test_an_unreadable_image_is_skipped_for_the_next_one(blob_data, tmp_path):
    import shutil

    root = tmp_path / "set"
    shutil.copytree(blob_data / "train", root)
    (root / "images" / "crowd_01.png").write_bytes(b"not a png")
    torch_set = CountingDataset(read_dataset(root), augment=None, input_size=(48, 64), seed=0)
    _, _, source = torch_set[1]
    assert source == 2 and torch_set.skipped == 1 and torch_set.skipped_files == ["crowd_01.png"]


def test_a_dataset_without_images_is_a_data_error(tmp_path):
    from leanvision.data.formats import CountingSet

    with pytest.raises(DataError, match="no images"):
        CountingDataset(CountingSet([], tmp_path), augment=None, input_size=(32, 32), seed=0)
