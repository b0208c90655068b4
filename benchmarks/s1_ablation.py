"""S1's ablation on the synthetic retail set (issue 19): each trick added in turn, measured.

Rows, each a training run of the S1 recipe (`configs/s1_retail_classify.yaml`, EfficientNet-
Lite0 from ImageNet) for the same wall-clock budget, or a stage on top of the one before:

    stretch -> + letterbox -> + label smoothing -> + expanded head (= the recipe)
    -> + FixRes 280 (`leanvision fixres`, 2 epochs of the head) -> + flip TTA
    -> ensemble of 3 (the recipe with seeds 0, 1, 2, each + FixRes) + flip TTA

Every row reports val top-1 and tail top-1 (classes ranked by training images, the bottom
third) through the deployed model (OpenVINO FP32 and INT8, `runtime.classify` predictors:
the card's resize, TTA and ensembles as `leanvision predict` runs them), and images/s of
those predictors over the val set (batches of 8, one stream, images decoded beforehand).
INT8 is `leanvision quantize --max-drop 1.0` (top-1 points) of each FP32 export.

    .venv/bin/python benchmarks/s1_ablation.py --minutes 6 --json s1_ablation.json   # ~65 min, quiet machine
    .venv/bin/python benchmarks/s1_ablation.py --quick                               # the path in ~6 min

Prints a Markdown table with the command, CPU and ISA; `--json` also writes the rows.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "s1_retail_classify"
PLAIN_HEAD = "model.overrides={hidden: 0, dropout: 0.0, label_smoothing: 0.0}"
# (row, recipe overrides): the training rows; FixRes, TTA and the ensemble build on the last.
TRAINED = (
    ("stretch", ["data.resize=stretch", PLAIN_HEAD]),
    ("+ letterbox", ["data.resize=letterbox", PLAIN_HEAD]),
    ("+ label smoothing", ["data.resize=letterbox", "model.overrides={hidden: 0, dropout: 0.0, label_smoothing: 0.1}"]),
    ("+ expanded head", []),
)


def _machine() -> dict:
    import openvino
    import torch

    from leanvision.runtime.hardware import detect_cpu

    cpu = detect_cpu()
    return {"cpu": cpu.summary(), "int8_path": cpu.int8_path, "torch": torch.__version__,
            "openvino": openvino.__version__, "date": datetime.date.today().isoformat()}


def _train(name: str, data: Path, work: Path, overrides: list[str], minutes: float, seed: int) -> Path:
    from leanvision.training import load_config, train

    run = work / name
    if (run / "best.pt").is_file():  # a rerun of the script reuses finished runs
        return run
    config = load_config(RECIPE, [f"data.train={data / 'train'}", f"data.val={data / 'val'}", f"output={run}",
                                  f"time_budget_minutes={minutes}", f"seed={seed}", *overrides])
    start = time.perf_counter()
    train(config, progress=False)
    (run / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    return run


def _fixres(run: Path, size: int, epochs: int) -> Path:
    from leanvision.training.fixres import fixres

    out = run / f"fixres{size}"
    if not (out / "fixres.json").is_file():
        fixres(run, size=size, epochs=epochs, output=out, progress=False)
    return out


def _deploy(run: Path, data: Path, calib_size: int) -> tuple[Path, Path]:
    """FP32 OpenVINO export and its INT8 (`quantize --max-drop 1.0`)."""
    from leanvision.compression.quantize import (
        BudgetOptions,
        CalibrationOptions,
        QuantizeOptions,
        quantize,
    )
    from leanvision.export import export_model

    fp32, int8 = run / "openvino", run / "int8"
    if not (fp32 / "model_card.json").is_file():
        export_model(run, format="openvino", out=fp32)
    if not (int8 / "model_card.json").is_file():
        options = QuantizeOptions(calibration=CalibrationOptions(size=calib_size),
                                  budget=BudgetOptions(max_drop=1.0))
        quantize(fp32, calib=data / "train", val=data / "val", out=int8, options=options)
    return fp32, int8


@functools.cache  # every row scores the same val images: decode them once
def _val_images(data: Path, class_names: tuple[str, ...]) -> tuple[list[np.ndarray], np.ndarray]:
    from leanvision.data.images import read_rgb
    from leanvision.data.labelled import read_classification_set

    dataset = read_classification_set(data / "val", class_names).dataset
    images = [read_rgb(dataset.image_root / name) for name, _ in dataset.items]
    return images, np.array([label for _, label in dataset.items])


def _measure(dirs: list[Path], tta: str, images: list[np.ndarray], labels: np.ndarray,
             counts: np.ndarray) -> dict:
    """Top-1, tail top-1 and images/s of the deployed model (or ensemble) over the val images."""
    from leanvision.evaluation.classification import classification_metrics
    from leanvision.runtime import load_predictor
    from leanvision.runtime.classify import load_ensemble

    overrides = {"tta": tta}
    predictor = load_ensemble(dirs, overrides=overrides) if len(dirs) > 1 else load_predictor(dirs[0],
                                                                                             overrides=overrides)
    try:
        timings, logits = [], []
        for _ in range(2):  # the first pass warms the engines up; the second is timed
            logits = []
            start = time.perf_counter()
            for i in range(0, len(images), 8):
                logits += [p.logits for p in predictor(images[i:i + 8])]
            timings.append(time.perf_counter() - start)
    finally:
        predictor.close()
    metrics = classification_metrics(np.stack(logits), labels, train_counts=counts)
    return {"top1": round(100 * metrics.top1, 2), "tail_top1": round(100 * metrics.group_top1[2], 2),
            "images_per_s": round(len(images) / timings[-1], 1)}


def _row(name: str, dirs: list[tuple[Path, Path]], tta: str, data: Path, note: str) -> dict:
    from leanvision.core import ModelCard

    card = ModelCard.load(dirs[0][0])
    counts = np.asarray(card.class_counts)
    images, labels = _val_images(data, tuple(card.class_names))
    fp32 = _measure([d[0] for d in dirs], tta, images, labels, counts)
    int8 = _measure([d[1] for d in dirs], tta, images, labels, counts)
    row = {"row": name, "input": f"{card.input.height}x{card.input.width}", "resize": card.input.resize.value,
           "tta": tta, "models": len(dirs), "note": note,
           "top1_fp32": fp32["top1"], "tail_top1_fp32": fp32["tail_top1"], "images_per_s_fp32": fp32["images_per_s"],
           "top1_int8": int8["top1"], "tail_top1_int8": int8["tail_top1"], "images_per_s_int8": int8["images_per_s"]}
    row["int8_speedup"] = round(row["images_per_s_int8"] / row["images_per_s_fp32"], 2)
    print(json.dumps(row), flush=True)
    return row


def _epochs(run: Path) -> str:
    lines = (run / "metrics.csv").read_text().strip().splitlines()
    wall = (run / "wall_seconds.txt").read_text().strip() if (run / "wall_seconds.txt").is_file() else "?"
    return f"{len(lines) - 1} epochs in {wall} s"


def _table(rows: list[dict]) -> str:
    head = ("| row | input | TTA | models | top-1 FP32 | tail top-1 FP32 | img/s FP32 | top-1 INT8 | "
            "tail top-1 INT8 | img/s INT8 | INT8 speed-up | training |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['row']} | {r['input']} {r['resize']} | {r['tta']} | {r['models']} | {r['top1_fp32']} | "
                     f"{r['tail_top1_fp32']} | {r['images_per_s_fp32']} | {r['top1_int8']} | {r['tail_top1_int8']} | "
                     f"{r['images_per_s_int8']} | {r['int8_speedup']}x | {r['note']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per trained row")
    parser.add_argument("--work", type=Path, default=Path("s1_ablation"), help="runs, exports and data go here")
    parser.add_argument("--data", type=Path, default=None, help="an ImageFolder set with train/ and val/ "
                        "(default: `data synth --task classify` into WORK/data)")
    parser.add_argument("--fixres-size", type=int, default=280)
    parser.add_argument("--fixres-epochs", type=int, default=2)
    parser.add_argument("--calib-size", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="a 40-class set and 0.5-minute rows: the path only")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from leanvision.core import Task
    from leanvision.data.synth import synthesize

    minutes = 0.5 if args.quick else args.minutes
    data = args.data or args.work / "data"
    if args.data is None and not (data / "synth.json").is_file():
        synthesize(Task.CLASSIFY, data, **({"images": 160, "classes": 40} if args.quick else {}))
    machine = _machine()
    started = time.perf_counter()
    rows, runs = [], {}
    for index, (name, overrides) in enumerate(TRAINED):
        runs[name] = _train(f"row{index}", data, args.work, overrides, minutes, seed=0)
        rows.append(_row(name, [_deploy(runs[name], data, args.calib_size)], "none", data, _epochs(runs[name])))
    recipe_run = runs[TRAINED[-1][0]]
    tuned = [_fixres(recipe_run, args.fixres_size, args.fixres_epochs)]
    rows.append(_row(f"+ FixRes {args.fixres_size}", [_deploy(tuned[0], data, args.calib_size)], "none", data,
                     f"+ {args.fixres_epochs} epochs of the head"))
    rows.append(_row("+ flip TTA", [_deploy(tuned[0], data, args.calib_size)], "flip", data, "-"))
    for seed in (1, 2):
        tuned.append(_fixres(_train(f"seed{seed}", data, args.work, [], minutes, seed=seed), args.fixres_size,
                             args.fixres_epochs))
    rows.append(_row("ensemble of 3 + flip TTA", [_deploy(t, data, args.calib_size) for t in tuned], "flip", data,
                     f"3 runs (seeds 0-2) of {minutes} min + FixRes"))
    command = "python benchmarks/s1_ablation.py " + shlex.join(sys.argv[1:])
    print(f"\n{command}\nmachine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    print(f"training budget per run: {minutes} min; total wall time {time.perf_counter() - started:.0f} s\n")
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"command": command, "machine": machine, "minutes": minutes, "rows": rows},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
