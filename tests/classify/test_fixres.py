"""FixRes stage: only the classifier learns, the body's BatchNorm statistics follow the new
resolution, and the three top-1 figures are measured and written."""

from __future__ import annotations

import json

import pytest
import torch

from leanvision.core import ConfigError
from leanvision.training.checkpoint import model_from_checkpoint
from leanvision.training.fixres import RESULT_FILE, fixres


@pytest.fixture(scope="module")
def tuned(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("fixres") / "run"
    return fixres(trained_run, size=64, epochs=2, lr=0.05, output=out, progress=False)


def test_fixres_trains_the_head_only_and_refits_batchnorm_statistics(trained_run, tuned):
    original, card = model_from_checkpoint(trained_run / "best.pt")
    refit, refit_card = model_from_checkpoint(tuned.run_dir / "best.pt")
    assert (card.input.height, card.input.width) == (48, 48)
    assert (refit_card.input.height, refit_card.input.width) == (64, 64)  # deployed at the test size
    body, body_after = dict(original.backbone.named_parameters()), dict(refit.backbone.named_parameters())
    assert body and all(torch.equal(body[name], body_after[name]) for name in body)  # frozen
    head, head_after = dict(original.head.named_parameters()), dict(refit.head.named_parameters())
    assert any(not torch.equal(head[name], head_after[name]) for name in head)  # trained
    stats = {k: v for k, v in original.backbone.state_dict().items() if k.endswith("running_mean")}
    stats_after = refit.backbone.state_dict()
    assert stats and any(not torch.allclose(v, stats_after[k]) for k, v in stats.items())  # BN statistics refit


def test_fixres_reports_top1_before_and_after(trained_run, tuned):
    written = json.loads((tuned.run_dir / RESULT_FILE).read_text())
    assert written["train_size"] == [48, 48] and written["test_size"] == [64, 64]
    assert written["top1_train_size"] == tuned.top1_train_size == 1.0  # the tiny set is learned (val = train)
    for key in ("top1_test_size_before", "top1_test_size_after"):
        assert 0.0 <= written[key] <= 1.0
    assert tuned.top1_test_size_after >= 0.75  # the head refit at 64 px keeps the tiny set learned


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"size": 16}, "at least 32 px"),
    ({"epochs": 0}, "at least 1 epoch"),
])
def test_bad_fixres_arguments_are_one_line_errors(trained_run, tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        fixres(trained_run, output=tmp_path / "x", progress=False, **kwargs)
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()


def test_fixres_needs_a_run_directory(trained_run, tmp_path):
    lone = tmp_path / "lone.pt"
    lone.write_bytes((trained_run / "best.pt").read_bytes())
    with pytest.raises(ConfigError, match=r"config\.yaml"):
        fixres(lone, output=tmp_path / "x", progress=False)
