"""Training-step speed: images/s and Mpx/s of leanvision's step per model, memory layout,
frozen stages and autocast, with where the step's CPU time goes.

The step is leanvision's own (`Trainer.run_step`: normalise, forward, focal + L1 loss with
anchor matching, backward, SGD step), on fixed random uint8 batches shaped like the real
blood-cell set issue 16 measured (3 classes, 13 boxes of 20-150 px per image, 480x640 by
default): image content does not change the cost, box count and input size do.

    python benchmarks/train_speed.py                       # the real table (quiet machine)
    python benchmarks/train_speed.py --profile             # + time per op category, per case
    python benchmarks/train_speed.py --size 128x160 --batch 2 --steps 1 --warmup 1 --cases mbv2   # quick validation

Each case runs in its own subprocess (fresh allocator, one model in memory) and reports its
peak RSS. Prints a Markdown table with the command, CPU, ISA and date; `--json PATH` also
writes it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

# name -> (registered model, create_model overrides, NHWC, bf16 autocast)
CASES: dict[str, tuple[str, dict, bool, bool]] = {
    "mbv2": ("retinanet_mbv2_slim", {}, False, False),
    "mbv2_nhwc": ("retinanet_mbv2_slim", {}, True, False),
    "mbv2_nhwc_bf16": ("retinanet_mbv2_slim", {}, True, True),
    "mbv2_nhwc_frozen4": ("retinanet_mbv2_slim", {"trainable_backbone_layers": 4}, True, False),
    "mbv2_stock_nhwc": ("retinanet_mbv2", {}, True, False),
    "effl0_nhwc": ("retinanet_effl0_slim", {}, True, False),
    "effl0_nhwc_frozen5": ("retinanet_effl0_slim", {"trainable_backbone_layers": 5}, True, False),
    "effl0_nhwc_frozen5_bf16": ("retinanet_effl0_slim", {"trainable_backbone_layers": 5}, True, True),
    "effl0_nhwc_frozen4_head2": ("retinanet_effl0_slim", {"trainable_backbone_layers": 4, "head_convs": 2}, True, False),
    "effl0_nhwc_frozen3_head2": ("retinanet_effl0_slim", {"trainable_backbone_layers": 3, "head_convs": 2}, True, False),
    "effl0_nhwc_frozen4_head2_fbn": ("retinanet_effl0_slim", {"trainable_backbone_layers": 4, "head_convs": 2,
                                                              "frozen_bn": True}, True, False),
    "effl0_nhwc_frozen4_head2_fpn64": ("retinanet_effl0_slim", {"trainable_backbone_layers": 4, "head_convs": 2,
                                                                "fpn_channels": 64}, True, False),
    "effl0_nhwc_frozen2_head2": ("retinanet_effl0_slim", {"trainable_backbone_layers": 2, "head_convs": 2}, True, False),
    "effl0_nhwc_frozen3_head2_fpn64": ("retinanet_effl0_slim", {"trainable_backbone_layers": 3, "head_convs": 2,
                                                                "fpn_channels": 64}, True, False),
    "effl0_nhwc_frozen2_head2_fpn64": ("retinanet_effl0_slim", {"trainable_backbone_layers": 2, "head_convs": 2,
                                                                "fpn_channels": 64}, True, False),
    "effl0_nhwc_frozen4_head1_fpn64": ("retinanet_effl0_slim", {"trainable_backbone_layers": 4, "head_convs": 1,
                                                                "fpn_channels": 64}, True, False),
    "effl0_nhwc_frozen4_head1": ("retinanet_effl0_slim", {"trainable_backbone_layers": 4, "head_convs": 1}, True, False),
    "effl0_nhwc_frozen4_head2_unfolded": ("retinanet_effl0_slim", {"trainable_backbone_layers": 4, "head_convs": 2,
                                                                   "fold": False}, True, False),
    "effl0_nhwc_frozen4_head2_bf16": ("retinanet_effl0_slim", {"trainable_backbone_layers": 4, "head_convs": 2}, True,
                                      True),
    "effl0_nhwc_frozen3_head2_bf16": ("retinanet_effl0_slim", {"trainable_backbone_layers": 3, "head_convs": 2}, True,
                                      True),
    "effl0_nhwc_frozen4_head1_bf16": ("retinanet_effl0_slim", {"trainable_backbone_layers": 4, "head_convs": 1}, True,
                                      True),
    "effl0_nhwc_frozen4_head2_fpn64_bf16": ("retinanet_effl0_slim", {"trainable_backbone_layers": 4, "head_convs": 2,
                                                                     "fpn_channels": 64}, True, True),
    "effl0_nhwc_frozen4_head2_fbn_bf16": ("retinanet_effl0_slim", {"trainable_backbone_layers": 4, "head_convs": 2,
                                                                   "frozen_bn": True}, True, True),
}
# Profiler op name -> category of the breakdown (anything else: "other").
CATEGORIES = {
    "convolution_backward": "conv backward", "mkldnn_convolution": "conv forward",
    "native_batch_norm_backward": "batchnorm backward", "native_batch_norm": "batchnorm forward",
    "hardtanh_backward": "activation backward", "threshold_backward": "activation backward",
    "hardtanh": "activation forward", "hardtanh_": "activation forward", "clamp": "activation forward",
    "relu_": "activation forward", "copy_": "copies (layout, dtype)", "add_": "optimizer and grads",
}
LOSS_OPS = ("maximum", "minimum", "nonzero", "index", "_index_put_impl_", "sigmoid", "binary_cross_entropy",
            "max", "eq", "where", "gather", "abs", "log", "exp")


def _batch(height: int, width: int, batch: int, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8, generator=gen)
    targets = []
    for _ in range(batch):
        xy = torch.rand(13, 2, generator=gen) * torch.tensor([width * 0.75, height * 0.75])
        wh = 20 + torch.rand(13, 2, generator=gen) * 130
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(0, 3, (13,), generator=gen)})
    return images, targets, torch.arange(batch)


def _breakdown(trainer, batch) -> dict[str, float]:
    """Share of the step's self CPU time per op category (torch.profiler, one step)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.run_step(batch)
    shares: dict[str, float] = {}
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    for event in events:
        op = event.key.removeprefix("aten::")
        category = CATEGORIES.get(op, "loss, matching, anchors" if op in LOSS_OPS else "other")
        shares[category] = shares.get(category, 0.0) + event.self_cpu_time_total / total
    return {k: round(v, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}


def run_case(name: str, *, size: tuple[int, int], batch: int, steps: int, warmup: int, threads: int,
             profile: bool, keep_memory: bool = False) -> dict:
    """Time `steps` training steps after `warmup` ones; returns the row."""
    import torch

    from leanvision.core.resources import keep_freed_memory
    from leanvision.models import create_model
    from leanvision.training import Trainer

    if keep_memory:
        keep_freed_memory()  # as `leanvision train` does

    model_name, overrides, nhwc, bf16 = CASES[name]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    overrides = dict(overrides)
    folded = overrides.pop("fold", True)
    model = create_model(model_name, num_classes=3, **overrides).train()
    if not folded:  # the step as it was before `models.fold`
        from leanvision.models.fold import unfold

        unfold(model)
    card = model.card(class_names=["a", "b", "c"], input_size=size)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    trainer = Trainer(model, [], optimizer, mean=card.input.mean, std=card.input.std, channels_last=nhwc)
    trainer.autocast_dtype = torch.bfloat16 if bf16 else None
    data = _batch(*size, batch)
    for _ in range(warmup):
        trainer.run_step(data)
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        start = time.perf_counter()
        trainer.run_step(data)
        times.append(time.perf_counter() - start)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
    median = sorted(times)[len(times) // 2]
    row = {"case": name, "model": model_name, "overrides": overrides, "nhwc": nhwc, "bf16": bf16,
           "size": f"{size[0]}x{size[1]}", "batch": batch, "threads": threads, "step_s_median": round(median, 3),
           "images_per_s": round(batch / median, 3), "mpx_per_s": round(batch * size[0] * size[1] / median / 1e6, 3),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "malloc": "keep freed" if keep_memory else "glibc default", "page_faults_per_step": round(faults)}
    if profile:
        row["breakdown"] = _breakdown(trainer, data)
    return row


def _subprocess_case(args: argparse.Namespace, name: str) -> dict:
    command = [sys.executable, __file__, "--case", name, "--size", args.size, "--batch", str(args.batch),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    if args.profile:
        command.append("--profile")
    if args.keep_freed_memory:
        command.append("--keep-freed-memory")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"case {name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _machine() -> dict:
    import torch

    flags = set()
    model_name = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    isa = "AMX" if "amx_int8" in flags else "AVX-512 VNNI" if "avx512_vnni" in flags else "AVX2"
    return {"cpu": model_name, "isa": isa, "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "date": datetime.date.today().isoformat()}


def _tables(rows: list[dict]) -> str:
    lines = ["| case | model | overrides | NHWC | bf16 | malloc | input | batch | step s | images/s | Mpx/s | "
             "page faults/step | peak RSS MB |", "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['case']} | {r['model']} | {r['overrides'] or '-'} | {r['nhwc']} | {r['bf16']} | "
                     f"{r['malloc']} | {r['size']} | {r['batch']} | {r['step_s_median']} | {r['images_per_s']} | "
                     f"{r['mpx_per_s']} | {r['page_faults_per_step']} | {r['peak_rss_mb']} |")
    profiled = [r for r in rows if "breakdown" in r]
    if profiled:
        categories = list(dict.fromkeys(c for r in profiled for c in r["breakdown"]))
        lines += ["", "| case | " + " | ".join(categories) + " |", "|" + "---|" * (len(categories) + 1)]
        for r in profiled:
            lines.append(f"| {r['case']} | " + " | ".join(f"{r['breakdown'].get(c, 0):.1%}" for c in categories) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="480x640", help="input HxW in px (the real blood-cell set: 480x640)")
    parser.add_argument("--batch", type=int, default=8, help="images per step (S0: 8)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--cases", default=",".join(CASES), help="comma list of: " + ", ".join(CASES))
    parser.add_argument("--profile", action="store_true", help="also profile one step per case by op category")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="call keep_freed_memory() first, as `leanvision train` does (glibc's malloc reuses freed blocks)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and machine here")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        height, width = (int(v) for v in args.size.split("x"))
        print(json.dumps(run_case(args.case, size=(height, width), batch=args.batch, steps=args.steps,
                                  warmup=args.warmup, threads=args.threads, profile=args.profile,
                                  keep_memory=args.keep_freed_memory)))
        return
    rows = [_subprocess_case(args, name) for name in args.cases.split(",")]
    machine = _machine()
    print(f"command: python {' '.join(sys.argv)}")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    print(_tables(rows))
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
