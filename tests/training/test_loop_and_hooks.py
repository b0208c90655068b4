"""The bare loop (any iterable of batches) and the hooks one by one."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from leanvision.core import Detections
from leanvision.training import HookBase, NonFiniteLossError, Trainer
from leanvision.training.config import AmpMode
from leanvision.training.hooks import (
    AmpHook,
    GradClipHook,
    LrScheduleHook,
    ModelEMA,
    NonFiniteLossHook,
    resolve_autocast,
    warmup_cosine_lr,
)
from leanvision.training.hooks import amp as amp_module
from leanvision.training.hooks.precise_bn import update_bn_stats
from tests.training.tiny_detector import TinyGridDetector, squares_image

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def _batches(count: int = 2, size: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    batches = []
    for b in range(count):
        pairs = [squares_image(rng, 64, 1) for _ in range(size)]
        images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).contiguous()
        targets = [{"boxes": torch.from_numpy(p[1]), "labels": torch.zeros(1, dtype=torch.int64)} for p in pairs]
        batches.append((images, targets, torch.arange(b * size, (b + 1) * size)))
    return batches


class Recorder(HookBase):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattribute__(self, name):
        points = ("before_train", "after_train", "before_epoch", "after_epoch", "before_step", "after_backward", "after_step")
        if name in points:
            return lambda: object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)


def _trainer(model=None, hooks=(), lr=0.05, batches=None):
    torch.manual_seed(0)
    model = model or TinyGridDetector(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return Trainer(model, batches or _batches(), optimizer, mean=MEAN, std=STD, hooks=hooks)


def test_hooks_are_called_in_the_documented_order():
    recorder = Recorder()
    _trainer(hooks=[recorder]).train(0, 2)
    step = ["before_step", "after_backward", "after_step"]
    epoch = ["before_epoch", *step, *step, "after_epoch"]
    assert recorder.calls == ["before_train", *epoch, *epoch, "after_train"]


def test_the_loss_falls_on_a_fixed_batch_set():
    losses = []

    class Track(HookBase):
        def after_step(self):
            losses.append(self.trainer.losses["total"])

    trainer = _trainer(hooks=[Track()], lr=0.02)
    trainer.train(0, 25)
    assert trainer.iteration == 50
    assert np.mean(losses[-4:]) < 0.3 * np.mean(losses[:4])


def test_after_train_runs_when_training_fails():
    recorder = Recorder()
    trainer = _trainer(hooks=[NonFiniteLossHook(), recorder])
    with torch.no_grad():
        trainer.model.head.weight.fill_(float("inf"))
    with pytest.raises(NonFiniteLossError, match=r"at step 1 \(epoch 1; .*no checkpoint had been written yet"):
        trainer.train(0, 1)
    assert recorder.calls[-1] == "after_train" and isinstance(trainer.error, NonFiniteLossError)
    assert "after_step" not in recorder.calls  # the bad step never reached the optimizer


def test_grad_clip_bounds_the_norm():
    norms = []

    class Norm(HookBase):
        def after_backward(self):
            params = [p.grad for p in self.trainer.model.parameters() if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in params]))))

    clip = GradClipHook(0.5)
    _trainer(hooks=[clip, Norm()]).train(0, 1)
    assert max(norms) == pytest.approx(0.5, rel=1e-4)  # the tiny model's raw norm is well above 0.5


def test_warmup_cosine_lr_by_hand():
    kwargs = {"base_lr": 1e-2, "final_lr": 1e-5, "warmup_iters": 10, "warmup_factor": 0.001}
    assert warmup_cosine_lr(0, 100, **kwargs) == pytest.approx(1e-5)
    assert warmup_cosine_lr(5, 100, **kwargs) == pytest.approx(1e-2 * (0.001 * 0.5 + 0.5))
    assert warmup_cosine_lr(10, 100, **kwargs) == pytest.approx(1e-2)
    mid = 10 + (99 - 10) / 2
    assert warmup_cosine_lr(int(mid), 100, **kwargs) < 0.5 * (1e-2 + 1e-5) + 1e-4
    assert warmup_cosine_lr(99, 100, **kwargs) == pytest.approx(1e-5)
    lrs = [warmup_cosine_lr(i, 100, **kwargs) for i in range(10, 100)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    # A run shorter than three warm-ups still decays: warm-up is capped at a third of it.
    assert warmup_cosine_lr(8, 9, **kwargs) == pytest.approx(1e-5)


def test_lr_hook_sets_every_group():
    trainer = _trainer(hooks=[LrScheduleHook(base_lr=0.1, final_lr=0.001, warmup_iters=0, warmup_factor=1.0)])
    trainer.train(0, 2)  # 4 steps; the last one ran at the final LR
    assert all(g["lr"] == pytest.approx(0.001) for g in trainer.optimizer.param_groups)


def test_ema_follows_the_warmup_decay_formula():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.9, warmup_steps=2)
    expected = 0.0
    for value in (1.0, 2.0, 3.0):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        d = 0.9 * (1 - math.exp(-ema.updates / 2))
        expected = d * expected + (1 - d) * value
        assert float(ema.module.weight[0, 0]) == pytest.approx(expected, rel=1e-6)
    assert not ema.module.weight.requires_grad and not ema.module.training


def test_amp_auto_follows_the_isa(monkeypatch):
    monkeypatch.setattr(amp_module, "native_bf16_flags", lambda: [])
    dtype, reason = resolve_autocast(AmpMode.AUTO)
    assert dtype is None and "fp32" in reason and torch.backends.cpu.get_cpu_capability() in reason
    monkeypatch.setattr(amp_module, "native_bf16_flags", lambda: ["amx_bf16"])
    dtype, reason = resolve_autocast(AmpMode.AUTO)
    assert dtype is torch.bfloat16 and "amx_bf16" in reason
    assert resolve_autocast(AmpMode.OFF)[0] is None


def test_amp_decision_is_logged_and_bf16_steps_run(caplog):
    caplog.set_level("INFO", logger="leanvision.training.hooks.amp")
    trainer = _trainer(hooks=[AmpHook(AmpMode.BF16)])
    trainer.train(0, 1)
    assert trainer.autocast_dtype is torch.bfloat16
    assert any("amp bf16 (forced)" in r.getMessage() for r in caplog.records)
    assert math.isfinite(trainer.losses["total"])


def test_detect_output_is_detections():
    images = _batches(1)[0][0].float()
    out = TinyGridDetector(1).eval().detect(images)
    assert len(out) == 4 and all(isinstance(d, Detections) for d in out)


def test_precise_bn_averages_the_batch_statistics_with_current_weights():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    batches = [(torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8), [], torch.arange(2)) for _ in range(3)]
    prepare = lambda x: x.float() / 255  # noqa: E731
    with torch.no_grad():
        outs = [model[0](prepare(images)) for images, _, _ in batches[:2]]
    expected_mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    used = update_bn_stats(model, batches, num_batches=2, prepare=prepare)
    assert used == 2 and not model.training
    assert torch.allclose(model[1].running_mean, expected_mean, atol=1e-6)
    assert model[1].momentum == 0.1  # restored


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _budget_run(monkeypatch, epoch_seconds, *, budget: float, steps: int = 10, startup: float = 20.0,
                recipe_epochs: int = 100):
    """Drive a TimeBudgetHook as the Trainer does, on a fake clock: `epoch_seconds(epoch)` is the
    time of one epoch's steps plus evaluation (a tenth of it); the first step also pays `startup`.
    Returns (the hook, the trainer, the elapsed seconds at the end, planned epochs per epoch)."""
    from types import SimpleNamespace

    from leanvision.training.hooks import TimeBudgetHook
    from leanvision.training.hooks import time_budget as module

    clock = _Clock()
    monkeypatch.setattr(module.time, "monotonic", clock)
    hook = TimeBudgetHook(seconds=budget)
    trainer = SimpleNamespace(epoch=0, start_epoch=0, max_epochs=recipe_epochs, stop_requested=False,
                              step_seconds=0.0, iteration=0)
    hook.trainer = trainer
    hook.before_train()
    plans = []
    while trainer.epoch < trainer.max_epochs and not trainer.stop_requested:
        hook.before_epoch()
        plans.append(trainer.max_epochs)
        per_step = epoch_seconds(trainer.epoch) * 0.9 / steps
        for step in range(steps):
            trainer.step_seconds = per_step + (startup if trainer.epoch == 0 and step == 0 else 0.0)
            clock.now += trainer.step_seconds
            trainer.iteration += 1
            hook.after_step()
            if trainer.stop_requested:
                break
        clock.now += epoch_seconds(trainer.epoch) * 0.1  # evaluation and checkpoint
        trainer.epoch += 1
    return hook, trainer, clock.now, plans


def test_time_budget_plans_from_the_steady_part_of_the_first_epoch(monkeypatch):
    # 100 s epochs, but the first step also pays 20 s of start-up: planned from 100 s, not 120 s.
    _, trainer, end, plans = _budget_run(monkeypatch, lambda epoch: 100.0, budget=1500)
    assert plans[1] == 14  # 1380 s left after the first epoch: 13 more of 100 s
    assert trainer.epoch == 14 and not trainer.stop_requested
    assert 1500 - 100 <= end <= 1500  # the budget ends within one epoch of its limit


def test_time_budget_keeps_its_plan_through_noise_of_a_few_percent(monkeypatch):
    noise = [1.0, 1.04, 0.97, 1.05, 0.96, 1.03, 0.98, 1.02, 1.0, 1.04, 0.97, 1.0, 1.01, 0.99, 1.0]
    _, _, end, plans = _budget_run(monkeypatch, lambda epoch: 100.0 * noise[epoch], budget=1500)
    assert set(plans[1:]) == {14}  # one schedule for the whole run: runs with one seed agree
    assert 1500 - 100 <= end <= 1500 + 25


def test_time_budget_refits_when_other_work_slows_the_machine(monkeypatch):
    # Epochs 3-5 take twice as long (another job shares the CPU): the plan shrinks, the cosine
    # is compressed, and the run still ends within an epoch of the budget instead of being cut.
    slow = lambda epoch: 200.0 if 3 <= epoch <= 5 else 100.0  # noqa: E731
    _, trainer, end, plans = _budget_run(monkeypatch, slow, budget=1500)
    assert plans[1] == 14 and min(plans) < 14
    assert 1500 - 200 <= end <= 1500 + 50
    assert trainer.epoch == plans[-1]


def test_time_budget_never_plans_more_epochs_than_the_recipe(monkeypatch):
    _, trainer, end, plans = _budget_run(monkeypatch, lambda epoch: 10.0, budget=1000, recipe_epochs=8)
    assert set(plans) == {8} and trainer.epoch == 8 and end < 200


def test_progress_bar_shows_epoch_loss_and_rate_on_a_terminal():
    import io

    from rich.console import Console

    from leanvision.training.hooks import ProgressHook

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    _trainer(hooks=[ProgressHook(console)]).train(0, 2)
    text = buffer.getvalue()
    assert "epoch 2/2" in text and "loss " in text and "it/s" in text
