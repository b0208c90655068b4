"""Ensembles and flip TTA of classifiers in `val`, `predict` and `bench`: the torch path's
ensemble logits are the mean of its members', and each command refuses what cannot be
averaged (another task, other classes) with a one-line error, exit 2.

The runtime's `EnsemblePredictor` is checked against hand-computed logits in
tests/runtime/test_classify_predictor.py; flip TTA of both worlds there and in
tests/classify/test_models_classify.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from leanvision.core import ModelCard, Task
from tests.counting.conftest import count_checkpoint, lively, run_cli  # noqa: F401 - fixtures


@pytest.fixture(scope="session")
def member_checkpoint(trained_run, tmp_path_factory) -> Path:
    """The trained run's best.pt with its conv and linear weights nudged: a second member of the same card."""
    from leanvision.training.checkpoint import inference_state, load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(trained_run / "best.pt")
    generator = torch.Generator().manual_seed(3)
    state = {name: value + 0.05 * value.std().nan_to_num() * torch.randn(value.shape, generator=generator)
             if value.is_floating_point() and value.ndim >= 2 else value
             for name, value in inference_state(checkpoint).items()}
    path = tmp_path_factory.mktemp("member") / "member.pt"
    save_checkpoint(path, {"model": state, "card": checkpoint["card"], "config": checkpoint.get("config", {})})
    return path


def _with_card(source: Path, target: Path, **changes) -> Path:
    """A copy of a checkpoint (or, for a directory, an exported model) whose card has `changes`."""
    from leanvision.training.checkpoint import load_checkpoint, save_checkpoint

    if source.is_dir():
        shutil.copytree(source, target)
        ModelCard.load(target).replace(**changes).save(target)
        return target
    checkpoint = load_checkpoint(source)
    checkpoint["card"] = ModelCard.from_dict(checkpoint["card"]).replace(**changes).to_dict()
    save_checkpoint(target, {k: v for k, v in checkpoint.items() if k not in ("format", "version")})
    return target


def _one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


# The torch path.

@pytest.mark.parametrize("tta", ["none", "flip"])
def test_predict_logits_of_an_ensemble_is_the_mean_of_its_members(trained_run, member_checkpoint, packages, tta):
    from leanvision.data.formats import read_of_task
    from leanvision.training.checkpoint import model_from_checkpoint
    from leanvision.training.classify_eval import predict_logits

    first, card = model_from_checkpoint(trained_run / "best.pt")
    second, _ = model_from_checkpoint(member_checkpoint)
    dataset = read_of_task(packages / "val", Task.CLASSIFY)
    singles = [predict_logits(m, dataset, card.input, batch_size=5, tta=tta).logits for m in (first, second)]
    both = predict_logits([first, second], dataset, card.input, batch_size=5, tta=tta)
    np.testing.assert_allclose(both.logits, (singles[0] + singles[1]) / 2, rtol=1e-5, atol=1e-5)
    assert np.abs(singles[0] - singles[1]).max() > 1e-3  # the members differ: the mean is not either


# leanvision val --ensemble

def test_val_averages_the_ensemble_and_records_its_members(trained_run, member_checkpoint, packages, tmp_path):
    code, out, err = run_cli(["val", str(trained_run), str(packages / "val"), "--out", str(tmp_path),
                              "--tta", "flip", "--ensemble", str(member_checkpoint)])
    assert code == 0, err
    assert "ensemble: mean logits of 2 models" in out and "(flip TTA)" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["ensemble"] == [str(trained_run / "best.pt"), str(member_checkpoint)]
    assert metrics["tta"] == "flip" and metrics["images"] == 12 and 0 <= metrics["top1"] <= 1


def test_val_refuses_a_member_with_other_classes(trained_run, packages, tmp_path):
    from leanvision.training.checkpoint import load_checkpoint

    names = ModelCard.from_dict(load_checkpoint(trained_run / "best.pt")["card"]).class_names
    other = _with_card(trained_run / "best.pt", tmp_path / "other.pt", class_names=tuple(reversed(names)))
    code, _, err = run_cli(["val", str(trained_run), str(packages / "val"), "--out", str(tmp_path / "o"),
                            "--ensemble", str(other)])
    _one_line_error(code, err, str(other), "has classes", "members must have the same classes")


def test_val_refuses_a_member_of_another_task(trained_run, count_checkpoint, packages, tmp_path):  # noqa: F811
    code, _, err = run_cli(["val", str(trained_run), str(packages / "val"), "--out", str(tmp_path),
                            "--ensemble", str(count_checkpoint)])
    _one_line_error(code, err, str(count_checkpoint), "is a count model; an ensemble averages classifiers' logits")


def test_val_refuses_an_ensemble_of_a_counting_model(count_checkpoint, trained_run, packages, tmp_path):  # noqa: F811
    code, _, err = run_cli(["val", str(count_checkpoint), str(packages / "val"), "--out", str(tmp_path),
                            "--ensemble", str(trained_run)])
    _one_line_error(code, err, "--ensemble averages classifiers' logits", "is a count model")


# leanvision predict --tta / --ensemble

@pytest.fixture(scope="module")
def exported_copy(exported, tmp_path_factory) -> Path:
    """A second exported member (the same model: the CLI's wiring is tested here, the
    averaging of different models in tests/runtime/test_classify_predictor.py)."""
    target = tmp_path_factory.mktemp("copy") / "s1b"
    shutil.copytree(exported, target)
    return target


def test_predict_runs_an_ensemble_with_flip(exported, exported_copy, packages, tmp_path):
    images = packages / "val" / "red_tall"
    code, _, err = run_cli(["predict", str(exported), str(images), "--out", str(tmp_path / "ens"), "--readers", "1",
                            "--tta", "flip", "--ensemble", str(exported_copy)])
    assert code == 0, err
    code, _, err = run_cli(["predict", str(exported), str(images), "--out", str(tmp_path / "one"), "--readers", "1",
                            "--tta", "flip"])
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "ens").glob("*.json") if p.name != "summary.json")
    assert written and written == sorted(p.name for p in (tmp_path / "one").glob("*.json") if p.name != "summary.json")
    for name in written:  # two copies of one model: the ensemble's mean is that model's logits
        ens, one = (json.loads((tmp_path / d / name).read_text()) for d in ("ens", "one"))
        assert ens["name"] == one["name"] and ens["score"] == pytest.approx(one["score"], abs=1e-5)
    one_image = sorted(images.iterdir())[0]
    code, out, err = run_cli(["predict", str(exported), str(one_image), "--out", str(tmp_path / "r.json"),
                              "--ensemble", str(exported_copy)])
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["name"] in out


@pytest.mark.parametrize("flags", [["--tta", "flip"], ["--ensemble", "MEMBER"]])
def test_predict_refuses_tta_and_ensembles_for_another_task(exported, exported_copy, packages, tmp_path, flags):
    counter = _with_card(exported, tmp_path / "counter", task=Task.COUNT, output_stride=8)
    flags = [str(exported_copy) if f == "MEMBER" else f for f in flags]
    code, _, err = run_cli(["predict", str(counter), str(packages / "val"), "--out", str(tmp_path / "o"), *flags])
    _one_line_error(code, err, f"{flags[0]}: classifiers only", "task count")


def test_predict_refuses_a_member_with_other_classes(exported, packages, tmp_path):
    names = ModelCard.load(exported).class_names
    other = _with_card(exported, tmp_path / "other", class_names=(*names[:-1], "purple_wide"))
    code, _, err = run_cli(["predict", str(exported), str(packages / "val"), "--out", str(tmp_path / "o"),
                            "--ensemble", str(other)])
    _one_line_error(code, err, str(other), "members must have the same classes")


# leanvision bench --tta / --ensemble

def test_bench_shows_tta_and_ensemble_cells_with_their_cost(exported, exported_copy, packages, tmp_path):
    out_dir = tmp_path / "bench"
    code, out, err = run_cli(["bench", str(exported), "--data", str(packages / "val"), "--out", str(out_dir),
                              "--backends", "onnxruntime", "--batches", "2", "--requests", "1", "--seconds", "0.2",
                              "--tta", "none,flip", "--ensemble", str(exported_copy)])
    assert code == 0, err
    cells = {c["name"]: c for c in json.loads((out_dir / "bench.json").read_text())["cells"]}
    one, both = exported.name, f"{exported.name}+{exported_copy.name}"
    assert set(cells) == {f"{one}/onnxruntime/fp32/b2/r1", f"{one}/onnxruntime/fp32/b2/r1/tta-flip",
                          f"{both}/onnxruntime/fp32/b2/r1", f"{both}/onnxruntime/fp32/b2/r1/tta-flip"}
    for cell in cells.values():
        assert 0 <= cell["metrics"]["top1"] <= 1 and cell["images_per_s"] > 0
    assert cells[f"{both}/onnxruntime/fp32/b2/r1"]["members"] == [str(exported), str(exported_copy)]
    assert cells[f"{one}/onnxruntime/fp32/b2/r1/tta-flip"]["tta"] == "flip"
    # Two copies of one model: the ensemble scores what the model does.
    assert cells[f"{both}/onnxruntime/fp32/b2/r1"]["metrics"]["top1"] == cells[f"{one}/onnxruntime/fp32/b2/r1"][
        "metrics"]["top1"]
    assert f"{one} (flip TTA)" in (out_dir / "bench.md").read_text()
    costs = [line for line in out.splitlines() if line.startswith((f"{one}/", f"{both}/")) and "images/s =" in line]
    assert len(costs) == 3 and all(f"x {one}/onnxruntime/fp32/b2/r1's" in line for line in costs), out


def test_bench_refuses_tta_and_ensembles_for_another_task(exported, packages, tmp_path):
    counter = _with_card(exported, tmp_path / "counter", task=Task.COUNT, output_stride=8)
    code, _, err = run_cli(["bench", str(counter), "--data", str(packages / "val"), "--out", str(tmp_path / "o"),
                            "--tta", "none,flip"])
    _one_line_error(code, err, "--tta flip: classifiers only", "task count")
    names = ModelCard.load(exported).class_names
    other = _with_card(exported, tmp_path / "other", class_names=tuple(reversed(names)))
    code, _, err = run_cli(["bench", str(exported), "--data", str(packages / "val"), "--out", str(tmp_path / "o"),
                            "--ensemble", str(other)])
    _one_line_error(code, err, str(other), "members must have the same classes")
