"""S0 end to end on a CPU budget: train the S0 recipe on synthetic cytology, report val mAP.

Synthesizes the detection set (`leanvision data synth --task detect`) unless `--data` is
given, trains `configs/s0_cervical_retinanet.yaml` with `time_budget_minutes` (the cosine
schedule is fitted to the epochs that fit in the budget after the first epoch), then scores
`best.pt` and `last.pt` on the val split with `leanvision val`'s code path.

    python benchmarks/train_s0.py                                   # 20 min, 2 cores (lead, quiet machine)
    python benchmarks/train_s0.py --minutes 1 --images 8 data.input_size=[256,256] loader.batch_size=2
                                                                    # quick validation

Extra `key=value` arguments override the recipe. `--weights-backbone` points at a local
torchvision mobilenet_v2 state dict (S0 started from ImageNet; nothing downloads here, so
without it the backbone starts from scratch). Prints the figures with the command, CPU and
date; `--json PATH` also writes them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ensure_data(path: Path, images: int, seed: int) -> Path:
    from leanvision.core import Task
    from leanvision.data.synth import synthesize

    if not (path / "train").is_dir():
        synthesize(Task.DETECT, path, seed=seed, images=images)
    return path


def _score(checkpoint: Path, val: Path) -> dict:
    from leanvision.data.formats import read_detection
    from leanvision.training.checkpoint import model_from_checkpoint
    from leanvision.training.predict import evaluate_model

    model, card = model_from_checkpoint(checkpoint)
    metrics, _ = evaluate_model(model, read_detection(val), card.input, class_names=card.class_names)
    return {k: round(v, 4) for k, v in metrics.summary().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="recipe overrides, key=value")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "s0_cervical_retinanet.yaml")
    parser.add_argument("--minutes", type=float, default=20.0, help="wall-time training budget")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the budget is for 2 cores)")
    parser.add_argument("--data", type=Path, default=None, help="a detect set with train/ and val/ (default: synthesize)")
    parser.add_argument("--images", type=int, default=120, help="synthetic training images (val gets a quarter)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights-backbone", type=Path, default=None, help="local ImageNet mobilenet_v2 state dict")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_s0", help="run directory (must not hold a run)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from leanvision.training import load_config, train

    data = _ensure_data(args.data or args.out.with_name(args.out.name + "_data"), args.images, args.seed)
    overrides = [f"data.train={data / 'train'}", f"data.val={data / 'val'}", f"output={args.out}",
                 f"time_budget_minutes={args.minutes}", f"loader.threads={args.threads}", f"seed={args.seed}"]
    if args.weights_backbone is not None:
        overrides.append(f"model.weights_backbone={args.weights_backbone}")
    config = load_config(args.config, [*overrides, *args.overrides])
    start = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - start
    figures = {
        "epochs": result.epochs, "train_seconds": round(seconds, 1),
        "best_epoch": result.best_epoch, "best": _score(result.run_dir / "best.pt", data / "val"),
        "last": _score(result.run_dir / "last.pt", data / "val"),
    }
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, threads {args.threads}, "
          f"date {datetime.date.today().isoformat()}")
    print(f"S0 recipe, {args.minutes:g} min budget: {result.epochs} epochs in {seconds:.0f} s; "
          f"best (epoch {result.best_epoch}) val mAP@0.5 {figures['best']['map50']:.4f}, mAP {figures['best']['map']:.4f}; "
          f"last val mAP@0.5 {figures['last']['map50']:.4f}, mAP {figures['last']['map']:.4f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"config": config.to_dict(), **figures}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
