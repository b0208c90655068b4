"""`leanvision quantize MODEL_DIR --calib DATA --val DATA --backend B --out DIR`: INT8, measured.

The work is `leanvision.compression.quantize.quantize`; this command parses the flags into
`QuantizeOptions`, draws the progress bar and prints what was measured: mAP@0.5 of FP32,
every layer INT8 and the saved model, throughput side by side on this CPU, the layers kept
in FP32, and every warning (INT8 not faster, budget not reached, bf16 unavailable).

Exit codes: 0; 1 when calibration or validation images could not be read and were skipped,
or labels of the validation set were left out (the model is written, calibrated and scored
on the others; the files are named in a one-line account on stderr, the images also in
quant_report.json): a batch that skipped items exits 1,
as `predict` and `val` do, so a script notices a calibration smaller than asked; 2 on bad
input.

The option defaults shown in `--help` are `QuantizeOptions`' own.
"""

from __future__ import annotations

from pathlib import Path

import typer

from leanvision.cli.ui import finish_batch, json_option, json_result, out, progress_bar, warn
from leanvision.compression.quantize.options import (
    CalibSelect,
    Fallback,
    OrtMethod,
    Preset,
    QuantizeOptions,
)
from leanvision.core import ConfigError, ModelCard, Task
from leanvision.core.errors import plural
from leanvision.runtime.engines.base import Backend

_DEFAULTS = QuantizeOptions()
# Below this a detection --max-drop (points of mAP@0.5) looks like a fraction of mAP.
_FRACTION_LIKE = 0.1


def _sizes(text: str | None) -> tuple[int, ...]:
    """"1,32,100,300" -> (1, 32, 100, 300)."""
    if not text:
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--calib-sweep takes image counts separated by commas, e.g. 1,32,100,300, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--calib-sweep sizes must be at least 1, got {text!r}")
    return sizes


# Which group of `QuantizeOptions` each flag fills (flag name -> (group, field)).
_GROUPS = {
    "calib_size": ("calibration", "size"), "calib_select": ("calibration", "select"),
    "calib_sweep": ("calibration", "sweep"), "seed": ("calibration", "seed"),
    "max_drop": ("budget", "max_drop"), "keep_fp32": ("budget", "keep_fp32"), "fallback": ("budget", "fallback"),
    "sensitivity_images": ("budget", "sensitivity_images"), "bench_seconds": ("bench", "seconds"),
    "preset": ("advanced", "preset"), "ort_method": ("advanced", "ort_method"),
    "per_channel": ("advanced", "per_channel"),
}


def _options(**flags) -> QuantizeOptions:
    groups: dict[str, dict] = {}
    for flag, value in flags.items():
        if value is not None:
            group, field = _GROUPS[flag]
            groups.setdefault(group, {})[field] = value
    try:
        return QuantizeOptions.from_dict(groups, where="quantize")
    except ConfigError as exc:  # name the flag the user typed, not the option's place in the groups
        message = exc.message
        for flag, (group, field) in _GROUPS.items():
            message = message.replace(f"quantize.{group}.{field}", "--" + flag.replace("_", "-"))
        raise ConfigError(message) from None


def quantize(
    model_dir: Path = typer.Argument(..., help="An exported FP32 model directory (model.xml or model.onnx + model_card.json)."),
    calib: Path = typer.Option(..., "--calib", help="Calibration images: a detection (COCO, VOC, YOLO) or counting (points, ShanghaiTech) dataset, or a folder of images."),
    val: Path = typer.Option(..., "--val", help="A labelled dataset of the model's task scoring every model: detection (mAP@0.5) or counting (MAE)."),
    backend: Backend = typer.Option(..., "--backend", help="openvino (NNCF, writes model.xml/.bin) or onnxruntime (QDQ, writes model.onnx)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Directory for the INT8 model, its card and quant_report.{json,md,html}."),
    calib_size: int = typer.Option(_DEFAULTS.calibration.size, "--calib-size", min=1, help="Calibration images (not batches)."),
    calib_select: CalibSelect = typer.Option(_DEFAULTS.calibration.select, "--calib-select", help="How calibration images are chosen: random, diverse (k-center in feature space) or similar (nearest the centroid)."),
    calib_sweep: str | None = typer.Option(None, "--calib-sweep", help="Also quantize with each of these sizes and report the metric per size, e.g. 1,32,100,300."),
    keep_fp32: list[str] = typer.Option([], "--keep-fp32", help="Keep out of INT8: a layer group of the card (backbone, fpn, head) or a regex matching whole node names. Repeat for several."),
    max_drop: float | None = typer.Option(None, "--max-drop", min=0.0, help="Accuracy budget: the most the saved model may be worse than FP32. Unit: detection, points of mAP@0.5 (1 = mAP@0.5 0.01 lower; 0.5 allows 0.8000 -> 0.7950); counting, objects per image of MAE (0.5 allows MAE 3.0 -> 3.5). The most sensitive layers stay FP32 until the measured drop fits."),
    fallback: Fallback = typer.Option(_DEFAULTS.budget.fallback, "--fallback", help="Precision of layers kept out of INT8 (bf16 only on CPUs with AVX-512 BF16 / AMX)."),
    preset: Preset = typer.Option(_DEFAULTS.advanced.nncf_preset, "--preset", help="NNCF preset (openvino): performance (symmetric) or mixed (asymmetric activations)."),
    ort_method: OrtMethod = typer.Option(_DEFAULTS.advanced.ort_calibration, "--ort-method", help="ONNX Runtime calibration method (activation ranges)."),
    per_channel: bool = typer.Option(_DEFAULTS.advanced.per_channel, "--per-channel/--no-per-channel", help="Per-output-channel weight scales."),
    seed: int = typer.Option(_DEFAULTS.calibration.seed, "--seed", min=0, help="Seed of random calibration selection."),
    sensitivity_images: int = typer.Option(_DEFAULTS.budget.sensitivity_images, "--sensitivity-images", min=1, help="Calibration images each layer's output error is measured on."),
    bench_seconds: float = typer.Option(_DEFAULTS.bench.seconds, "--bench-seconds", min=0.0, help="Seconds per model per throughput round; 0 skips throughput."),
    json_out: Path | None = json_option("the report (quant_report.json's content)"),
) -> None:
    """Quantize MODEL_DIR to INT8 (or mixed INT8/FP32 under --max-drop), measured on --val and on this CPU.

    Exit code 1 when calibration or validation images could not be read (skipped, named on stderr and in the report).
    """
    from leanvision.compression.quantize import quantize as run_quantize

    options = _options(calib_size=calib_size, calib_select=calib_select, calib_sweep=list(_sizes(calib_sweep)),
                       keep_fp32=list(keep_fp32), max_drop=max_drop, fallback=fallback, preset=preset,
                       ort_method=ort_method, per_channel=per_channel, seed=seed,
                       sensitivity_images=sensitivity_images, bench_seconds=bench_seconds)
    _warn_fraction_like(max_drop, model_dir)
    with json_result(json_out) as emit:
        with progress_bar("quantize") as update:
            result = run_quantize(model_dir, calib=calib, val=val, backend=backend, out=out_dir, options=options,
                                  progress=lambda stage, done, total: update(done, total, stage))
        _print(result)
        emit(result.report)
    calibration, validation = result.report["calibration"], result.report["validation"]
    skipped = [_split(text) for text in calibration["skipped"] + validation["skipped"]]
    labels = _left_out_labels(val, model_dir)
    total = calibration["files"] + validation["files"] + len(labels)
    finish_batch(skipped + labels, done=max(1, total - len(skipped) - len(labels)),
                 noun="item" if labels else "image", total=total, listed_in=result.out / "quant_report.json")


def _left_out_labels(val: Path, model_dir: Path) -> list[tuple[str, str]]:
    """(file, reason) of the labels of `val` that scoring left out (a bad box, an unsafe file
    name): the report counts unreadable images only, and a smaller validation set than the
    user gave must not pass silently."""
    from leanvision.data.labelled import load_labelled_set

    return [(issue.path, issue.reason) for issue in load_labelled_set(val, ModelCard.load(model_dir)).issues]


def _warn_fraction_like(max_drop: float | None, model_dir: Path) -> None:
    """One line on stderr when a detection budget looks like a fraction of mAP, not points."""
    if max_drop is None or not 0 < max_drop < _FRACTION_LIKE:
        return
    if ModelCard.load(model_dir).task is not Task.DETECT:
        return
    typer.echo(f"leanvision: warning: --max-drop is in points of mAP@0.5: {max_drop:g} allows mAP@0.5 to fall by "
               f"{max_drop / 100:g} (for a fall of {max_drop:g} in mAP@0.5 give --max-drop {max_drop * 100:g})",
               err=True)


def _split(issue: str) -> tuple[str, str]:
    """"path: reason" (how the report lists a skipped file) -> (path, reason)."""
    path, _, reason = issue.partition(": ")
    return path, reason


def _print(result) -> None:
    say = lambda text: out.print(text, markup=False, highlight=False)  # noqa: E731
    say(f"{result.out}: {', '.join(p.name for p in result.files)}")
    metric = result.metric
    worse = lambda score: metric.drop(result.fp32_score, score)  # noqa: E731
    say(f"{metric.label}: FP32 {result.fp32_score:.4f} | INT8 all layers {result.int8_all_score:.4f} "
        f"(worse by {worse(result.int8_all_score):+.2f} {metric.unit}) | saved {result.score:.4f} "
        f"(worse by {result.drop:+.2f} {metric.unit}, {plural(len(result.kept_layers), 'layer')} FP32, "
        f"precision {result.card.precision.value})")
    if result.throughput:
        base = result.throughput.get("FP32") or float("nan")
        shown = ", ".join(f"{label} {speed:.1f} ({speed / base:.2f}x)" for label, speed in result.throughput.items())
        say(f"throughput, images/s measured here ({result.report['cpu']['int8_path']}): {shown}")
    budget = result.report.get("budget")
    if budget:
        state = "reached" if budget["reached"] else "NOT reached (best model found saved)"
        say(f"accuracy budget {budget['budget']:g} {metric.unit}: {state}")
    if result.sensitivity is not None:
        top = ", ".join(s.layer for s in result.sensitivity.layers[:5])
        say(f"most sensitive layers: {top}")
    if result.kept_layers:
        say(f"FP32 layers: {', '.join(result.kept_layers)}")
    for warning in result.warnings:
        warn(warning)
    say(f"report: {result.out / 'quant_report.html'}")
