"""RetinaNet matching + losses: torchvision's per-image loop against leanvision's batched version.

Times the part of a training step after the head: anchor matching, focal and L1 losses, and
their backward into the head outputs, on shapes like the S0 recipe's (batch 8, 3 classes,
13 boxes of 20-150 px per image; 400x400 inputs, and 480x640). Both run on the same inputs,
interleaved round by round; the table gives the median ms per batch and the ratio.

    python benchmarks/detect_loss.py                 # the real table (quiet machine)
    python benchmarks/detect_loss.py --rounds 3      # quick validation
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torchvision.models.detection._utils import Matcher
from torchvision.ops import box_iou

from leanvision.models import create_model
from leanvision.models.tasks.detect.retina_loss import retina_losses
from leanvision.runtime.hardware import detect_cpu


def _targets(generator: torch.Generator, batch: int, boxes: int, height: int, width: int) -> list[dict]:
    out = []
    for _ in range(batch):
        size = 20 + torch.rand((boxes, 1), generator=generator) * 130
        centre = torch.rand((boxes, 2), generator=generator) * torch.tensor([width, height])
        xyxy = torch.cat([centre - size / 2, centre + size / 2], dim=1)
        xyxy = xyxy.clamp(min=0).minimum(torch.tensor([width, height, width, height]))
        out.append({"boxes": xyxy, "labels": torch.randint(0, 3, (boxes,), generator=generator)})
    return out


def _per_image(model, logits, deltas, anchors, targets):
    matcher = Matcher(model.fg_iou_threshold, model.bg_iou_threshold, allow_low_quality_matches=True)
    matched = [matcher(box_iou(t["boxes"], anchors)) for t in targets]
    outputs = {"cls_logits": logits, "bbox_regression": deltas}
    return model.head.compute_loss(targets, outputs, [anchors] * len(targets), matched)


def _batched(model, logits, deltas, anchors, targets):
    return retina_losses(logits, deltas, anchors, targets, box_coder=model.box_coder,
                         fg_iou=model.fg_iou_threshold, bg_iou=model.bg_iou_threshold)


def _time(fn, model, logits, deltas, anchors, targets) -> float:
    logits = logits.detach().requires_grad_()
    deltas = deltas.detach().requires_grad_()
    start = time.perf_counter()
    losses = fn(model, logits, deltas, anchors, targets)
    sum(losses.values()).backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--boxes", type=int, default=13)
    parser.add_argument("--sizes", default="400x400,480x640")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {detect_cpu().summary()}; torch {torch.__version__}, {args.threads} threads")
    print("| input | anchors | per-image loop ms | batched ms | speed-up |\n|---|---|---|---|---|")
    model = create_model("retinanet_effl0_slim", num_classes=3)
    generator = torch.Generator().manual_seed(0)
    for size in args.sizes.split(","):
        height, width = (int(v) for v in size.split("x"))
        images = torch.zeros(1, 3, height, width)
        with torch.no_grad():
            anchors = model.anchors(images, model.forward_features(images))[0]
        targets = _targets(generator, args.batch, args.boxes, height, width)
        logits = torch.randn((args.batch, len(anchors), 3), generator=generator) - 4
        deltas = torch.randn((args.batch, len(anchors), 4), generator=generator) * 0.2
        times: dict[str, list[float]] = {"loop": [], "batched": []}
        for _ in range(args.rounds + 2):  # the first two rounds warm up
            times["loop"].append(_time(_per_image, model, logits, deltas, anchors, targets))
            times["batched"].append(_time(_batched, model, logits, deltas, anchors, targets))
        loop, batched = (statistics.median(v[2:]) * 1e3 for v in times.values())
        print(f"| {size} | {len(anchors)} | {loop:.1f} | {batched:.1f} | {loop / batched:.2f}x |")


if __name__ == "__main__":
    main()
