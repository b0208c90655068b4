"""Classification data: samplers draw the long tail as documented, the dataset places images
exactly as deployment does, augmentations are functions of (seed, epoch, index), mixup /
cutmix targets weigh what was mixed, labels.csv sets read and refuse bad rows."""

from __future__ import annotations

import numpy as np
import pytest

from leanvision.core import ConfigError, DataError, InputSpec
from leanvision.data.augment.classify import BatchMix, build_classify_augmentation
from leanvision.data.formats import read_of_task
from leanvision.data.formats.classification import read_labels_csv
from leanvision.data.torch_classify import ClassificationDataset, ClassSampler, sampling_weights
from leanvision.runtime.preprocess import place_image, prepare_images
from tests.classify.conftest import CLASSES, write_set

LABELS = [0] * 8 + [1] * 2 + [2] * 1  # a long tail: 8, 2, 1 images


def test_sampling_weights_match_the_hand_computed_class_shares():
    uniform = sampling_weights(LABELS, "uniform")
    balanced = sampling_weights(LABELS, "class_balanced")
    sqrt = sampling_weights(LABELS, "sqrt")
    share = lambda w, c: w[np.asarray(LABELS) == c].sum()  # noqa: E731
    assert [share(uniform, c) for c in range(3)] == pytest.approx([8 / 11, 2 / 11, 1 / 11])
    assert [share(balanced, c) for c in range(3)] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    root = np.sqrt([8, 2, 1])
    assert [share(sqrt, c) for c in range(3)] == pytest.approx(list(root / root.sum()))


def test_a_class_balanced_epoch_draws_each_class_about_equally_and_replays_by_seed():
    labels = np.asarray(LABELS * 100)
    sampler = ClassSampler(labels, "class_balanced", seed=3)
    sampler.set_epoch(2)
    drawn = labels[list(sampler)]
    assert np.bincount(drawn) / len(drawn) == pytest.approx([1 / 3] * 3, abs=0.03)
    again = ClassSampler(labels, "class_balanced", seed=3)
    again.set_epoch(2)
    assert list(again) == list(sampler)
    again.set_epoch(3)
    assert list(again) != list(sampler)


def test_a_uniform_epoch_is_a_permutation():
    sampler = ClassSampler(LABELS, "uniform", seed=0)
    assert sorted(sampler) == list(range(len(LABELS)))


@pytest.mark.parametrize("resize", ["letterbox", "stretch", "center_crop"])
def test_samples_are_placed_as_deployment_places_them(packages, resize):
    dataset = read_of_task(packages / "val", "classify")
    spec = InputSpec(height=40, width=56, resize=resize, pad_value=128)
    torch_set = ClassificationDataset(dataset, augment=None, spec=spec, seed=0)
    image, target, index = torch_set[4]
    deployed = prepare_images([dataset.image_files()[4]],
                              InputSpec(height=40, width=56, resize=resize, pad_value=128, dtype="uint8"))
    assert index == 4 and int(target["label"]) == dataset.items[4][1]
    np.testing.assert_array_equal(image.numpy(), deployed.batch[0])


def test_letterbox_keeps_the_aspect_and_pads_right_and_bottom_with_grey():
    image = np.full((60, 20, 3), 10, np.uint8)  # tall: 3:1
    placed = place_image(image, InputSpec(height=30, width=30, resize="letterbox", pad_value=128))
    assert (placed[:, :10] == 10).all() and (placed[:, 10:] == 128).all()


def test_augmentation_is_a_function_of_seed_epoch_and_index(packages):
    dataset = read_of_task(packages / "train", "classify")
    ops = build_classify_augmentation([{"op": "random_resized_crop"}, {"op": "random_flip"},
                                       {"op": "autoaugment"}, {"op": "random_erasing", "p": 1.0},
                                       {"op": "cutout", "p": 1.0}])
    spec = InputSpec(height=48, width=48, resize="letterbox")
    make = lambda: ClassificationDataset(dataset, augment=ops, spec=spec, seed=5)  # noqa: E731
    a, b = make(), make()
    b.set_epoch(1)
    a.set_epoch(1)
    np.testing.assert_array_equal(a[3][0].numpy(), b[3][0].numpy())
    a.set_epoch(2)
    assert not np.array_equal(a[3][0].numpy(), b[3][0].numpy())


def test_cutmix_targets_weigh_the_pasted_area_and_mixup_the_blend():
    rng = np.random.default_rng(0)
    images = np.stack([np.zeros((10, 10, 3), np.uint8), np.full((10, 10, 3), 200, np.uint8)])
    mixed, soft = BatchMix(cutmix_alpha=1.0, p=1.0)(images, np.array([0, 1]), 2, rng)
    pasted = (mixed[0] == 200).all(axis=2).mean()
    assert soft[0] == pytest.approx([1 - pasted, pasted]) and soft.sum(axis=1) == pytest.approx([1, 1])
    mixed, soft = BatchMix(mixup_alpha=0.4, p=1.0)(images, np.array([0, 1]), 2, rng)
    lam = soft[0, 0]
    assert mixed[0, 0, 0, 0] == round(200 * (1 - lam))


def test_unknown_ops_and_parameters_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"unknown op 'random_flop'.*did you mean 'random_flip'"):
        build_classify_augmentation([{"op": "random_flop"}])
    with pytest.raises(ConfigError, match="mixup"):
        build_classify_augmentation([{"op": "mixup", "beta": 1}])


def test_labels_csv_reads_classes_sorted_and_refuses_a_missing_file(tmp_path):
    write_set(tmp_path / "imgs", 2, seed=0, classes=CLASSES[:2])
    rows = ["path,label"] + [f"imgs/{c}/{c}_{i:02d}.png,{c}" for c in CLASSES[:2] for i in range(2)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    dataset = read_of_task(tmp_path, "classify")
    assert dataset.classes == CLASSES[:2] and len(dataset.items) == 4
    (tmp_path / "labels.csv").write_text("\n".join([*rows, "imgs/gone.png,blue_tall"]) + "\n")
    with pytest.raises(DataError, match=r"line 6: image imgs/gone\.png not found"):
        read_labels_csv(tmp_path)
    (tmp_path / "labels.csv").write_text("\n".join([*rows, "../x.png,blue_tall"]) + "\n")
    with pytest.raises(DataError, match="line 6"):
        read_labels_csv(tmp_path)
