"""Counting through the one training runner: learning tested by learning (a tiny set is
overfitted), best.pt by the lowest val MAE, and `leanvision train` / `val` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from leanvision.core import ConfigError, DataError, DensityMap, Task
from leanvision.training import TrainConfig, load_checkpoint, load_config, train
from leanvision.training.config import (
    AugmentOptions,
    DataOptions,
    EmaOptions,
    EvalOptions,
    LoaderOptions,
    ModelOptions,
    OptimizerKind,
    OptimizerOptions,
    ScheduleOptions,
)
from leanvision.training.hooks.metrics_log import read_rows
from tests.counting.conftest import HEIGHT, WIDTH, run_cli, write_blob_set
from tests.templates.task_contract import TaskContractTests

S3 = Path(__file__).resolve().parents[2] / "configs" / "s3_crowd_csrnet.yaml"


def tiny_count_config(train_dir: Path, val_dir: Path, output: Path, *, epochs: int, **changes) -> TrainConfig:
    """csrnet_mbv2 with a 32-32 back end on the blob crowds at their own size, AdamW, one thread."""
    config = TrainConfig(
        data=DataOptions(train=train_dir, val=val_dir, input_size=(HEIGHT, WIDTH)),
        model=ModelOptions(name="csrnet_mbv2", overrides={"backend_channels": [32, 32]}),
        optimizer=OptimizerOptions(kind=OptimizerKind.ADAMW, lr=1e-3, weight_decay=0.0, clip_grad_norm=None),
        schedule=ScheduleOptions(epochs=epochs, warmup_iters=2, final_lr=1e-4),
        ema=EmaOptions(enabled=False),
        # Precise BatchNorm: 30 steps leave the running statistics far from the weights'.
        eval=EvalOptions(period=5, precise_bn_batches=1),
        loader=LoaderOptions(batch_size=6, workers=0, threads=1),
        output=output,
    )
    return config.replace(**changes)


@pytest.mark.slow
def test_csrnet_mbv2_overfits_six_images_and_keeps_the_lowest_mae(blob_data, tmp_path):
    """Six images with 0-45 heads (mean 19): the untrained model predicts ~0 (MAE ~19);
    30 epochs bring the MAE on those images below 2 (measured: ~0.5)."""
    config = tiny_count_config(blob_data / "train", blob_data / "train", tmp_path / "run", epochs=30)
    result = train(config, progress=False)
    rows = [row for row in read_rows(tmp_path / "run") if "val_mae" in row]
    maes = [row["val_mae"] for row in rows]
    assert result.metric == "mae" and result.best_map50 is None
    assert result.best == pytest.approx(min(maes)) and result.best_epoch == rows[maes.index(min(maes))]["epoch"]
    assert rows[0]["loss"] > 20 * rows[-1]["loss"]
    assert result.best < 2.0
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["card"]["task"] == "count" and best["card"]["output_stride"] == 8
    assert best["card"]["metrics"]["val_mae"] == pytest.approx(result.best)
    assert set(best["card"]["metrics"]) == {"val_mae", "val_rmse", "val_nae"}


def test_training_batches_are_the_crops_as_cut_not_stretched_to_the_input(blob_data, tmp_path):
    """A fully convolutional density model trains on its 32 x 48 crops at their own scale
    (stretching them to the 96 x 128 input would double every head and cost 8x the pixels)."""
    from leanvision.training.run import registry_factory
    from leanvision.training.tasks.base import adapter_for

    steps = [{"op": "random_crop", "height": 32, "width": 48}, {"op": "random_flip"}]
    config = tiny_count_config(blob_data / "train", blob_data / "val", tmp_path / "run", epochs=1,
                               augment=AugmentOptions(steps=steps))
    adapter = adapter_for(Task.COUNT)
    data = adapter.load_data(config.data, workers=1)
    model = registry_factory(config)(len(data.classes))
    card = model.card(class_names=data.classes, input_size=config.data.input_size)
    def batch(config):
        return next(iter(adapter.train_loader(data, card, model, augment=config.augment, loader=config.loader,
                                              seed=config.seed)))

    images, targets, _ = batch(config)
    assert images.shape[-2:] == (32, 48) and all(t["density"].shape[-2:] == (4, 6) for t in targets)
    assert [float(t["density"].sum()) for t in targets] == pytest.approx([float(t["count"]) for t in targets], abs=1e-3)
    config = config.replace(augment=AugmentOptions(steps=[*steps, {"op": "random_scale"}]))  # size varies: fitted
    images, _, _ = batch(config)
    assert images.shape[-2:] == (HEIGHT, WIDTH)


def test_counting_augmentation_steps_are_checked_for_a_counting_model(blob_data, tmp_path):
    config = tiny_count_config(blob_data / "train", blob_data / "val", tmp_path / "run", epochs=1)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    ok = load_config(path, ["augment.steps=[{op: random_crop, height: 32, width: 32}]"])
    assert ok.augment.steps[0]["op"] == "random_crop"
    with pytest.raises(ConfigError, match=r"unknown op 'online_crop_resize'.*counting ops"):
        load_config(path, ["augment.steps=[{op: online_crop_resize}]"])


def test_a_counting_model_refuses_a_detection_set(tiny_coco, blob_data, tmp_path):
    config = tiny_count_config(tiny_coco, None, tmp_path / "run", epochs=1)
    with pytest.raises(DataError, match=r"expected a counting dataset.*found a coco"):
        train(config, progress=False)


def test_a_training_set_without_heads_is_refused(tmp_path):
    write_blob_set(tmp_path / "empty", [0, 0], seed=0)
    config = tiny_count_config(tmp_path / "empty", None, tmp_path / "run", epochs=1)
    with pytest.raises(DataError, match="no head points"):
        train(config, progress=False)


def test_the_s3_recipe_is_complete_and_says_what_s3_did():
    from tests.training.test_train_config import _key_paths

    config = load_config(S3)
    written = yaml.safe_load(S3.read_text())
    assert _key_paths(written) == _key_paths(config.to_dict())  # every key spelled out
    assert config.model.name == "csrnet" and config.data.input_size == (576, 768)
    assert config.model.overrides["density"] == {"kernel": "adaptive", "beta": 0.3, "k": 3, "sigma": 4.0}
    assert [s["op"] for s in config.augment.steps] == ["random_scale", "random_crop", "random_flip",
                                                       "photometric_jitter"]
    for line in S3.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-")) and ":" in stripped and not stripped.endswith(":"):
            assert "#" in stripped, f"uncommented key: {line}"


@pytest.fixture(scope="module")
def cli_run(blob_data, tmp_path_factory) -> Path:
    """`leanvision train --config recipe.yaml` of 2 epochs; returns the run directory."""
    root = tmp_path_factory.mktemp("cli")
    config = tiny_count_config(blob_data / "train", blob_data / "val", root / "run", epochs=2,
                               augment=AugmentOptions(steps=({"op": "random_flip"},)))
    (root / "recipe.yaml").write_text(yaml.safe_dump(config.to_dict()))
    code, stdout, stderr = run_cli(["train", "--config", str(root / "recipe.yaml"), "--json", str(root / "t.json")])
    assert code == 0, stderr
    assert "2 epochs, best val MAE" in stdout
    summary = json.loads((root / "t.json").read_text())
    assert summary["metric"] == "mae" and summary["best_map50"] is None and summary["best"] >= 0
    return root / "run"


def test_val_prints_mae_rmse_nae_as_training_measured(cli_run, blob_data, tmp_path):
    code, stdout, stderr = run_cli(["val", str(cli_run), str(blob_data / "val"), "--out", str(tmp_path)])
    assert code == 0, stderr
    assert "3 images (1 without people), 35 people" in stdout and "MAE" in stdout and "NAE" in stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    best = load_checkpoint(cli_run / "best.pt")
    assert metrics["mae"] == pytest.approx(best["card"]["metrics"]["val_mae"], abs=1e-6)
    assert metrics["nae_images"] == 2 and len(metrics["images_counted"]) == 3


def test_val_of_an_empty_counting_set_is_one_line(cli_run, tmp_path):
    root = write_blob_set(tmp_path / "none", [], seed=0)
    code, _, stderr = run_cli(["val", str(cli_run), str(root)])
    assert code == 2 and stderr.strip().count("\n") == 0
    assert "the counting set has no images" in stderr


def test_val_of_a_detection_set_with_a_counting_model_is_one_line(cli_run, tiny_coco):
    code, _, stderr = run_cli(["val", str(cli_run), str(tiny_coco)])
    assert code == 2 and "expected a counting dataset" in stderr and stderr.strip().count("\n") == 0


def test_points_outside_their_image_are_left_out_with_a_warning(blob_data, tmp_path):
    from leanvision.data.formats import read_dataset
    from leanvision.data.formats.counting import write_points_json
    from leanvision.training.tasks.count import load_counting_split

    dataset = read_dataset(blob_data / "val")
    record = dataset.images[0]
    record.points = np.concatenate([record.points, [[WIDTH + 5.0, 3.0], [-1.0, 2.0]]]).astype(np.float32)
    root = tmp_path / "outside"
    root.mkdir()
    (root / "images").symlink_to(blob_data / "val" / "images")
    write_points_json(dataset, root)
    loaded, issues = load_counting_split(root, split="val", workers=1)
    assert len(loaded.images[0].points) == 25 and len(loaded.images) == 3
    assert [i.reason for i in issues] == [f"2 points outside the {WIDTH}x{HEIGHT} image (left out)"]


@pytest.fixture(scope="module")
def cli_run_exported(cli_run, tmp_path_factory) -> Path:
    from leanvision.export import export_model

    return export_model(cli_run, format="onnx", out=tmp_path_factory.mktemp("contract") / "model").out


class TestCountTaskContract(TaskContractTests):
    @pytest.fixture
    def contract_task(self):
        return Task.COUNT

    @pytest.fixture
    def contract_exported(self, cli_run_exported):
        return cli_run_exported

    @pytest.fixture
    def contract_labelled(self, blob_data):
        return blob_data / "val"

    @pytest.fixture
    def contract_result_type(self):
        return DensityMap

    @pytest.fixture
    def contract_run(self, cli_run):
        return cli_run
