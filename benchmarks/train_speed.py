"""Training speed table: images/s of the training step, slim vs stock widths, fp32 vs bf16.

S0 cut the RetinaNet widths (FPN 256 -> 128, head towers 256 -> 64) for inference speed;
this measures what the cut buys in training, on the CPU at hand, and whether bf16 autocast
pays here. The step is leanvision's own (`Trainer.run_step`: normalise, focal + L1 loss,
backward, SGD step), on fixed random uint8 batches with a few boxes each (the loss's anchor
matching is part of the cost; image content is not).

    python benchmarks/train_speed.py                         # the real table (lead, quiet machine)
    python benchmarks/train_speed.py --size 256 --batch 2 --steps 2 --warmup 1   # quick validation

Each case runs in its own subprocess (fresh allocator, one model in memory). Prints a
Markdown table with the command, CPU, ISA and date; `--json PATH` also writes it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

MODELS = {"slim": "retinanet_mbv2_slim", "stock": "retinanet_mbv2"}  # FPN/head 128/64 vs 256/256


def _batch(size: int, batch: int, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen)
    targets = []
    for _ in range(batch):
        xy = torch.rand(3, 2, generator=gen) * size * 0.8
        wh = 0.05 * size + torch.rand(3, 2, generator=gen) * 0.1 * size
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.zeros(3, dtype=torch.int64)})
    return images, targets, torch.arange(batch)


def run_case(model_key: str, amp: str, *, size: int, batch: int, steps: int, warmup: int, threads: int) -> dict:
    """Time `steps` training steps after `warmup` ones; returns the row."""
    import torch

    from leanvision.models import create_model
    from leanvision.training import Trainer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(MODELS[model_key], num_classes=1).train()
    card = model.card(class_names=["abnormal"], input_size=(size, size))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    trainer = Trainer(model, [], optimizer, mean=card.input.mean, std=card.input.std)
    trainer.autocast_dtype = torch.bfloat16 if amp == "bf16" else None
    batch_data = _batch(size, batch)
    for _ in range(warmup):
        trainer.run_step(batch_data)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.run_step(batch_data)
        times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    return {"model": model_key, "fpn/head": "128/64" if model_key == "slim" else "256/256", "amp": amp,
            "size": size, "batch": batch, "threads": threads, "step_s_median": round(median, 3),
            "images_per_s": round(batch / median, 3), "loss": round(trainer.losses["total"], 4)}


def _subprocess_case(args: argparse.Namespace, model_key: str, amp: str) -> dict:
    command = [sys.executable, __file__, "--case", model_key, amp, "--size", str(args.size), "--batch",
               str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"case {model_key}/{amp} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine() -> dict:
    import torch

    from leanvision.training.hooks.amp import native_bf16_flags

    model_name = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model_name = names[0] if names else model_name
    return {"cpu": model_name, "isa": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": ", ".join(native_bf16_flags()) or "none", "torch": torch.__version__,
            "date": datetime.date.today().isoformat()}


def _table(rows: list[dict]) -> str:
    header = "| model | FPN/head | autocast | size | batch | threads | step s (median) | images/s |"
    lines = [header, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r['model']} | {r['fpn/head']} | {r['amp']} | {r['size']} | {r['batch']} | "
                     f"{r['threads']} | {r['step_s_median']} | {r['images_per_s']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=800, help="input side in px (S0: 800)")
    parser.add_argument("--batch", type=int, default=8, help="images per step (S0: 8)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--models", default="slim,stock", help="comma list of: " + ", ".join(MODELS))
    parser.add_argument("--amp", default="off,bf16", help="comma list of: off, bf16")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and machine here")
    parser.add_argument("--case", nargs=2, metavar=("MODEL", "AMP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        row = run_case(*args.case, size=args.size, batch=args.batch, steps=args.steps, warmup=args.warmup,
                       threads=args.threads)
        print(json.dumps(row))
        return
    rows = [_subprocess_case(args, m, a) for m in args.models.split(",") for a in args.amp.split(",")]
    machine = _machine()
    print(f"command: python {' '.join(sys.argv)}")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    print(_table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
