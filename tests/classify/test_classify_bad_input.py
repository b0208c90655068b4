"""Bad classification input through the real CLI: a one-line error and exit 2 for what cannot
be trained (an empty class folder, a labels.csv naming a missing file, a validation class the
model does not have); an undecodable image is skipped and counted."""

from __future__ import annotations

import shutil

from tests.classify.conftest import tiny_config, write_set
from tests.counting.conftest import run_cli


def _train(tmp_path, train_dir, val_dir, *, epochs=1):
    config = tiny_config(train_dir, val_dir, tmp_path / "run", epochs=epochs)
    config.to_yaml(tmp_path / "recipe.yaml")
    return run_cli(["train", "--config", str(tmp_path / "recipe.yaml")])


def test_an_empty_class_folder_is_refused(tmp_path):
    train_dir = write_set(tmp_path / "train", 2, seed=0)
    (train_dir / "zz_empty").mkdir()
    code, _, err = _train(tmp_path, train_dir, None)
    assert code == 2 and "zz_empty: class folder has no images" in err and len(err.strip().splitlines()) == 1, err


def test_a_validation_class_the_training_set_lacks_is_refused(tmp_path):
    train_dir = write_set(tmp_path / "train", 2, seed=0)
    val_dir = write_set(tmp_path / "val", 1, seed=1)
    shutil.copytree(val_dir / "red_tall", val_dir / "purple_box")
    code, _, err = _train(tmp_path, train_dir, val_dir)
    assert code == 2 and "class 'purple_box' is not among the model's 4 classes" in err, err


def test_a_labels_csv_naming_a_missing_file_is_refused(tmp_path):
    write_set(tmp_path / "data" / "imgs", 2, seed=0)
    rows = ["path,label", "imgs/red_tall/red_tall_00.png,red", "imgs/gone.png,blue"]
    (tmp_path / "data" / "labels.csv").write_text("\n".join(rows) + "\n")
    code, _, err = _train(tmp_path, tmp_path / "data", None)
    assert code == 2 and "labels.csv: line 3: image imgs/gone.png not found" in err, err


def test_an_undecodable_image_is_skipped_and_counted(tmp_path):
    train_dir = write_set(tmp_path / "train", 3, seed=0)
    (train_dir / "red_tall" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    code, out, err = _train(tmp_path, train_dir, None)
    assert code == 1, err
    assert "1 item skipped" in err and "broken.png: corrupt PNG header" in err, (out, err)
