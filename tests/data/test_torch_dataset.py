"""DetectionDataset: fixed-size deterministic samples, bad images skipped and counted."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from leanvision.core import DataError, Detections, ResizeMode  # noqa: E402
from leanvision.data.augment import build_augmentation, negative_pool  # noqa: E402
from leanvision.data.formats import (  # noqa: E402
    DetectionSet,
    Format,
    ImageRecord,
    read_detection,
    write_detection,
)
from leanvision.data.torch_dataset import DetectionDataset, collate  # noqa: E402

STEPS = [
    {"op": "replace_background", "p": 0.5, "stain_norm": "reinhard"},
    {"op": "random_shift", "p": 0.5},
    {"op": "online_crop_resize", "crop": 64, "size": 32},
    {"op": "random_flip"},
    {"op": "photometric_jitter"},
]
INPUT = (32, 32)


def make_set(root: Path, *, positives: int = 4, negatives: int = 1, corrupt: int = 0) -> Path:
    """A COCO set of 100x80 noisy images: positives with two boxes, negatives, and
    `corrupt` files listed with boxes whose bytes are not an image."""
    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir(parents=True)
    records = []
    for i in range(positives + negatives + corrupt):
        name = f"im{i}.png"
        if i < positives + negatives:
            cv2.imwrite(str(images / name), rng.integers(0, 256, (80, 100, 3), dtype=np.uint8))
        else:
            (images / name).write_bytes(b"\x89PNG but not really")
        boxes = np.zeros((0, 4), np.float32)
        if not positives <= i < positives + negatives:
            boxes = np.array([[5 + i, 6, 30 + i, 28], [50, 40, 70, 75]], np.float32)
        records.append(ImageRecord(name, 100, 80, Detections.from_boxes(boxes, [0, 1][: len(boxes)]), i + 1))
    write_detection(DetectionSet(("cell", "debris"), records, images), root, Format.COCO, copy_images=False)
    return root


def make_dataset(root: Path, *, seed: int = 7, **kwargs) -> DetectionDataset:
    dataset = read_detection(root)
    augment = build_augmentation(STEPS, negatives=negative_pool(dataset))
    return DetectionDataset(dataset, augment=augment, input_size=INPUT, seed=seed, **kwargs)


def by_index(dataset: DetectionDataset, workers: int, **loader_kwargs) -> dict[int, tuple]:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=2, num_workers=workers, collate_fn=collate, **loader_kwargs
    )
    out = {}
    for images, targets, indices in loader:
        for image, target, index in zip(images, targets, indices.tolist(), strict=True):
            out[index] = (image.numpy(), target["boxes"].numpy(), target["labels"].numpy())
    return out


def assert_same_samples(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for index in a:
        for x, y in zip(a[index], b[index], strict=True):
            assert np.array_equal(x, y), f"sample {index} differs"


def test_items_are_uint8_chw_of_the_input_size_with_typed_targets(tmp_path):
    dataset = make_dataset(make_set(tmp_path / "set"))
    image, target, index = dataset[0]
    assert image.dtype == torch.uint8 and image.shape == (3, *INPUT)
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1] == 4
    assert target["labels"].dtype == torch.int64 and len(target["labels"]) == len(target["boxes"])
    assert index == 0
    boxes = target["boxes"].numpy()
    assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= INPUT[1]).all() and (boxes[:, [1, 3]] <= INPUT[0]).all()


def test_without_augmentation_images_are_letterboxed_to_the_input_size(tmp_path):
    dataset = read_detection(make_set(tmp_path / "set"))
    image, target, _ = DetectionDataset(dataset, augment=None, input_size=(60, 50), seed=0)[0]
    assert image.shape == (3, 60, 50)
    # 100x80 -> 50x40 at the top-left, padding below; boxes scaled by 0.5.
    assert (image[:, 40:, :] == 0).all()
    np.testing.assert_allclose(target["boxes"].numpy(), dataset.images[0].targets.boxes * 0.5)


def test_crowd_and_difficult_boxes_are_not_training_targets(tmp_path):
    dataset = read_detection(make_set(tmp_path / "set"))
    first = dataset.images[0]
    dataset.images[0] = ImageRecord(first.file_name, first.width, first.height, first.targets, first.id,
                                    crowd=np.array([True, False]))
    dataset.images[1] = ImageRecord(dataset.images[1].file_name, 100, 80, dataset.images[1].targets, 2,
                                    difficult=np.array([False, True]))
    samples = DetectionDataset(dataset, augment=None, input_size=(60, 50), seed=0)
    np.testing.assert_allclose(samples[0][1]["boxes"].numpy(), first.targets.boxes[1:] * 0.5)
    np.testing.assert_allclose(samples[1][1]["boxes"].numpy(), dataset.images[1].targets.boxes[:1] * 0.5)


def test_samples_do_not_depend_on_worker_count_or_order(tmp_path):
    dataset = make_dataset(make_set(tmp_path / "set"))
    dataset.set_epoch(3)
    sequential = by_index(dataset, workers=0)
    parallel = by_index(dataset, workers=2)
    shuffled = by_index(dataset, workers=2, shuffle=True, generator=torch.Generator().manual_seed(1))
    assert_same_samples(sequential, parallel)
    assert_same_samples(sequential, shuffled)


def test_epoch_changes_samples_and_a_resumed_run_sees_the_same(tmp_path):
    root = make_set(tmp_path / "set")
    dataset = make_dataset(root)
    epoch0 = by_index(dataset, workers=0)
    dataset.set_epoch(1)
    epoch1 = by_index(dataset, workers=0)
    assert any(not np.array_equal(epoch0[i][0], epoch1[i][0]) for i in epoch0)
    resumed = make_dataset(root)
    resumed.set_epoch(1)
    assert_same_samples(epoch1, by_index(resumed, workers=0))
    other_seed = make_dataset(root, seed=8)
    other_seed.set_epoch(1)
    assert any(not np.array_equal(epoch1[i][0], s[0]) for i, s in by_index(other_seed, workers=0).items())


def test_set_epoch_reaches_persistent_workers(tmp_path):
    root = make_set(tmp_path / "set")
    dataset = make_dataset(root)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate,
                                         persistent_workers=True)
    list(loader)  # epoch 0 starts the workers
    dataset.set_epoch(1)
    seen = {}
    for images, _, indices in loader:
        for image, index in zip(images, indices.tolist(), strict=True):
            seen[index] = image.numpy()
    reference = make_dataset(root)
    reference.set_epoch(1)
    for index, image in seen.items():
        assert np.array_equal(image, reference[index][0].numpy())


def test_a_corrupt_image_is_skipped_with_a_warning_and_counted(tmp_path, caplog):
    root = make_set(tmp_path / "set", corrupt=1)
    dataset = make_dataset(root)
    bad = len(dataset) - 1
    with caplog.at_level(logging.WARNING, logger="leanvision.data.torch_dataset"):
        image, _, source = dataset[bad]
    assert "im5.png" in caplog.text and "not an image file" in caplog.text
    assert source == 0  # the next readable image, wrapping around
    assert image.shape == (3, *INPUT)
    assert dataset.skipped == 1 and dataset.skipped_files == ["im5.png"]
    caplog.clear()
    dataset[bad]
    assert dataset.skipped == 1 and not caplog.text  # logged and counted once


def test_skips_found_by_workers_are_counted_in_the_main_process(tmp_path):
    dataset = make_dataset(make_set(tmp_path / "set", corrupt=2))
    samples = by_index(dataset, workers=2)
    assert dataset.skipped == 2
    assert sorted(dataset.skipped_files) == ["im5.png", "im6.png"]
    assert len(samples) < len(dataset)  # the bad ones' samples came from other images
    assert_same_samples(samples, by_index(make_dataset(dataset.dataset.image_root.parent), workers=0))


def test_a_negative_image_gives_empty_targets(tmp_path):
    dataset = read_detection(make_set(tmp_path / "set"))
    negative = next(i for i, r in enumerate(dataset.images) if not len(r.targets))
    loader_set = DetectionDataset(dataset, augment=build_augmentation(STEPS[1:]), input_size=INPUT, seed=0)
    _, target, index = loader_set[negative]
    assert index == negative
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


def test_a_dataset_without_any_box_is_refused(tmp_path):
    dataset = read_detection(make_set(tmp_path / "set", positives=0, negatives=3))
    with pytest.raises(DataError, match="no boxes at all"):
        DetectionDataset(dataset, augment=None, input_size=INPUT, seed=0)


def test_a_dataset_of_only_unreadable_images_raises(tmp_path):
    dataset = read_detection(make_set(tmp_path / "set", positives=0, negatives=0, corrupt=2))
    loader_set = DetectionDataset(dataset, augment=None, input_size=INPUT, seed=0)
    with pytest.raises(DataError, match="none of the dataset's images can be read"):
        loader_set[0]


def test_collate_stacks_images_and_keeps_targets_per_image(tmp_path):
    dataset = make_dataset(make_set(tmp_path / "set"))
    images, targets, indices = collate([dataset[0], dataset[4], dataset[1]])
    assert images.shape == (3, 3, *INPUT) and images.dtype == torch.uint8
    assert indices.tolist() == [0, 4, 1] and len(targets) == 3
    assert targets[1]["boxes"].shape == (0, 4)


def test_a_crop_resize_at_the_card_scale_is_not_scaled_twice(tmp_path):
    """S0: tiles cropped 64 -> 32 for a card at scale 0.5 keep their objects at 0.5, as
    evaluation and deployment see them (scaling again would train at 0.25)."""
    dataset = read_detection(make_set(tmp_path, positives=1, negatives=0))
    augment = build_augmentation([{"op": "online_crop_resize", "crop": 64, "size": 32, "min_visibility": 1.0}])
    torch_set = DetectionDataset(dataset, augment=augment, input_size=(32, 32), seed=0,
                                 resize=ResizeMode.SCALE, scale=0.5)
    source = dataset.images[0].targets.boxes
    sizes = {tuple(np.round(b[2:] - b[:2], 3)) for b in source * 0.5}
    for epoch in range(4):
        torch_set.set_epoch(epoch)
        image, targets, _ = torch_set.sample(0)
        assert image.shape == (32, 32, 3) and len(targets) >= 1
        assert {tuple(np.round(b[2:] - b[:2], 3)) for b in targets.boxes} <= sizes
        assert (image.sum(2) > 0).any(1).sum() > 16  # the content fills the input, not a quarter of it
