"""Classifier training-step speed: leanvision's step against a plain timm + torch loop.

The peer is what a timm user writes (timm's `train.py` is not in the wheel): `timm.create_model`
with the same body and head, cross-entropy with label smoothing, SGD Nesterov, `loss.backward()`,
`optimizer.step()`. leanvision's case is `Trainer.run_step` on the registered classifier (the
S1 recipe's model: EfficientNet-Lite0 body, expanded head). Both take the same fixed uint8
batches (image content does not change the cost), one after the other in one process, with
fp32 / bf16 autocast and NCHW / NHWC; the frozen case is FixRes's stage (body frozen).

    python benchmarks/classify_train_speed.py                 # 224 px, batch 32 (the recipe)
    python benchmarks/classify_train_speed.py --steps 1 --warmup 1 --batch 8 --cases timm,lv   # quick

Prints a Markdown table with the command, CPU, ISA and date; `--json PATH` also writes it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from torch import nn

NUM_CLASSES = 200
# name -> (who, NHWC, bf16, frozen body)
CASES = {
    "timm": ("timm", False, False, False),
    "timm_nhwc": ("timm", True, False, False),
    "timm_nhwc_bf16": ("timm", True, True, False),
    "lv": ("leanvision", False, False, False),
    "lv_nhwc": ("leanvision", True, False, False),
    "lv_nhwc_bf16": ("leanvision", True, True, False),
    "lv_nhwc_frozen_body": ("leanvision", True, False, True),
}


def _timm_step(size: int, nhwc: bool, bf16: bool):
    import timm

    body = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    model = nn.Sequential(body, nn.Linear(body.num_features, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
                          nn.Dropout(0.2), nn.Linear(512, NUM_CLASSES)).train()
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-5)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    mean = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1) * 255

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        x = (images.float() - mean) / std
        if nhwc:
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            loss = criterion(model(x).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _leanvision_step(size: int, nhwc: bool, bf16: bool, frozen: bool):
    from leanvision.models import create_model
    from leanvision.training.config import OptimizerKind, OptimizerOptions
    from leanvision.training.loop import Trainer
    from leanvision.training.optim import build_optimizer

    overrides = {"hidden": 512, "dropout": 0.2, "label_smoothing": 0.1, "trainable": "head" if frozen else "all"}
    model = create_model("cls_effl0", num_classes=NUM_CLASSES, **overrides).train()
    optimizer = build_optimizer(model, OptimizerOptions(kind=OptimizerKind.SGD, lr=0.02, momentum=0.9,
                                                        nesterov=True, weight_decay=5e-5))
    trainer = Trainer(model, [], optimizer, mean=model.mean, std=model.std, channels_last=nhwc)
    trainer.autocast_dtype = torch.bfloat16 if bf16 else None

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        targets = [{"label": int(label)} for label in labels]
        trainer.run_step((images, targets, None))

    return step


def _run_case(name: str, size: int, batch: int, steps: int, warmup: int) -> dict:
    who, nhwc, bf16, frozen = CASES[name]
    step = _timm_step(size, nhwc, bf16) if who == "timm" else _leanvision_step(size, nhwc, bf16, frozen)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    for _ in range(warmup):
        step(images, labels)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step(images, labels)
        times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    return {"case": name, "who": who, "nhwc": nhwc, "bf16": bf16, "frozen_body": frozen, "step_s": round(median, 3),
            "images_per_s": round(batch / median, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from leanvision.runtime.hardware import detect_cpu

    rows = [_run_case(name, args.size, args.batch, args.steps, args.warmup) for name in args.cases.split(",")]
    command = "python benchmarks/classify_train_speed.py " + shlex.join(sys.argv[1:])
    machine = {"cpu": detect_cpu().summary(), "torch": torch.__version__, "date": datetime.date.today().isoformat()}
    print(f"{command}\nmachine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    print(f"\n| case | who | NHWC | bf16 | frozen body | step s | images/s ({args.size} px, batch {args.batch}) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['who']} | {r['nhwc']} | {r['bf16']} | {r['frozen_body']} | {r['step_s']} | "
              f"{r['images_per_s']} |")
    if args.json:
        args.json.write_text(json.dumps({"command": command, "machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
