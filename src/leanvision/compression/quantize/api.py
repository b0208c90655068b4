"""`quantize`: an FP32 model directory -> an INT8 (or mixed) model directory with a report.

    from leanvision.compression.quantize import QuantizeOptions, quantize
    result = quantize("exported/s0", calib="data/train", val="data/val", backend="openvino",
                      out="exported/s0-int8", options=QuantizeOptions(budget=BudgetOptions(max_drop=0.5)))
    result.drop, result.kept_layers, result.report["models"]

What happens, in order: calibration images are chosen (random / diverse / similar) and
preprocessed by the deployment predictor; the model is quantized once with every layer INT8;
FP32 and INT8 are scored on the validation set (mAP@0.5 for detection, MAE for counting);
every layer's sensitivity is
ranked from one switchable graph; an optional calibration-size sweep quantizes again per
size; then the model to save is the INT8 one, or re-quantized with `keep_fp32` ignored, or
found by the accuracy-budget search; throughputs are measured side by side; the card and
the reports are written.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.compression.quantize import report as reporting
from leanvision.compression.quantize.backend import QuantizerBackend
from leanvision.compression.quantize.budget import BudgetOutcome, BudgetSearch
from leanvision.compression.quantize.calibration import (
    CalibrationImages,
    choose_images,
    image_files,
    nncf_subset_size,
)
from leanvision.compression.quantize.groups import Node, feature_source, resolve
from leanvision.compression.quantize.onnxruntime_qdq import OnnxRuntimeQuantizer
from leanvision.compression.quantize.openvino_nncf import OpenVinoQuantizer
from leanvision.compression.quantize.options import (
    BENCH_ENGINE,
    CalibSelect,
    Fallback,
    QuantizeOptions,
)
from leanvision.compression.quantize.sensitivity import Sensitivity, rank_layers
from leanvision.compression.quantize.speed import SpeedCase, Throughput, measure_throughput
from leanvision.compression.quantize.validation import Metric, ValidationSet, load_validation_set
from leanvision.compression.quantize.workspace import (
    check_out,
    load_fp32_card,
    quantized_card,
)
from leanvision.core.card import CARD_FILENAME, ModelCard
from leanvision.core.errors import ConfigError, ModelError, plural
from leanvision.core.io import replace_dir, staging_dir
from leanvision.runtime import Backend, PrecisionHint, load_predictor
from leanvision.runtime.engines.base import as_backend
from leanvision.runtime.hardware import CpuInfo, detect_cpu
from leanvision.runtime.load import find_model_file
from leanvision.runtime.preprocess import read_image

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)
SWITCH = "lv_keep_fp32"
FEATURES = "lv_features"


def adapter_for(backend: Backend) -> QuantizerBackend:
    return OpenVinoQuantizer() if backend is Backend.OPENVINO else OnnxRuntimeQuantizer()


@dataclasses.dataclass(frozen=True)
class QuantizeResult:
    """What `quantize` wrote and measured.

    Attributes:
        out: the quantized model directory.
        files: the files in it.
        card: the saved card (precision int8 or mixed).
        metric: what the scores are (mAP@0.5 for detection, MAE for counting) and the unit
            of `drop`.
        fp32_score, int8_all_score, score: the validation metric of the FP32 model, of every
            layer INT8, and of the saved model.
        drop: how much worse the saved model is than FP32, in `metric.unit` (points of
            mAP@0.5, or MAE's rise in objects per image).
        kept_layers: layers of the saved model left out of INT8.
        budget_reached: None without a budget, else whether the saved model meets it.
        sensitivity: the per-layer ranking.
        throughput: label -> measured images/s ("FP32", "INT8 (all layers)", "saved").
        report: the JSON report (also in quant_report.json).
        warnings: what the user must know (INT8 not faster, budget missed, bf16 absent...).
    """

    out: Path
    files: tuple[Path, ...]
    card: ModelCard
    metric: Metric
    fp32_score: float
    int8_all_score: float
    score: float
    drop: float
    kept_layers: tuple[str, ...]
    budget_reached: bool | None
    sensitivity: Sensitivity | None
    throughput: dict[str, float]
    report: dict[str, Any]
    warnings: tuple[str, ...]


@dataclasses.dataclass
class _Job:
    """Everything resolved before quantizing: inputs, model, data, hardware."""

    model_dir: Path
    out: Path
    backend: Backend
    options: QuantizeOptions
    card: ModelCard
    adapter: QuantizerBackend
    fp32: Any
    nodes: list[Node]
    layers: list[Node]
    user_kept: list[Node]
    cpu: CpuInfo
    precision: PrecisionHint
    reduce_range: bool
    val: ValidationSet
    calib: CalibrationImages
    chosen: list[int]
    progress: Progress
    warnings: list[str]
    timings: dict[str, float]

    def run(self, model: Any, precision: PrecisionHint | None = None) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
        """A function batch -> raw outputs of `model` compiled in memory."""
        runner = self.adapter.runner(model, precision or self.precision)
        name = self.adapter.input_name(self.fp32)
        return lambda batch: runner({name: batch})

    def score(self, model: Any, precision: PrecisionHint | None = None) -> float:
        return self.val.score(self.run(model, precision))

    def quantize(self, images: int, ignored: Sequence[Node] = ()) -> Any:
        start = time.perf_counter()
        indices = self.chosen[:images]
        model = self.adapter.quantize(self.fp32, _Batches(self.calib, indices), images=len(indices),
                                      ignored=list(ignored), options=self.options.advanced, reduce_range=self.reduce_range)
        self.timings["quantize_runs"] = self.timings.get("quantize_runs", 0.0) + time.perf_counter() - start
        return model

    def nodes_of(self, layer_names: Sequence[str]) -> list[Node]:
        wanted = set(layer_names)
        return [n for n in self.layers if n.name in wanted]

    def warn(self, message: str) -> None:
        logger.warning(message)
        self.warnings.append(message)


class _Batches:
    """A re-iterable of (1, 3, H, W) calibration batches (NNCF may iterate more than once)."""

    def __init__(self, calib: CalibrationImages, indices: Sequence[int]) -> None:
        self.calib, self.indices = calib, list(indices)

    def __iter__(self):
        return self.calib.batches(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _fallback(requested: Fallback, backend: Backend, cpu: CpuInfo, warn: Callable[[str], None]) -> PrecisionHint:
    """The float precision for layers kept out of INT8: bf16 only where it can run."""
    if requested is Fallback.FP32:
        return PrecisionHint.FP32
    if backend is Backend.ONNXRUNTIME:
        warn("--fallback bf16: ONNX Runtime's CPU provider computes in fp32 only; layers kept out of INT8 run fp32")
        return PrecisionHint.FP32
    if not cpu.bf16:
        warn(f"--fallback bf16: this CPU has no bf16 (OpenVINO capabilities "
             f"{', '.join(cpu.openvino_capabilities or ['unknown'])}; no avx512_bf16 / amx_bf16): the search "
             "and the saved model use fp32 for layers kept out of INT8")
        return PrecisionHint.FP32
    return PrecisionHint.BF16


def _feature_fn(job_adapter: QuantizerBackend, fp32: Any, card: ModelCard) -> Callable[[np.ndarray], np.ndarray]:
    """batch -> (N, C) globally average-pooled activations of the backbone's last output."""
    source = feature_source(job_adapter.graph_order(fp32), card.layer_groups)
    runner = job_adapter.runner(job_adapter.with_output(fp32, source))
    name = job_adapter.input_name(fp32)
    logger.info("calibration features: %s, average-pooled", source)

    def features(batch: np.ndarray) -> np.ndarray:
        maps = runner({name: batch})[FEATURES]
        return maps.reshape(maps.shape[0], maps.shape[1], -1).mean(axis=2)

    return features


def _prepare(model_dir: Path, calib: Path, val: Path, backend: Backend, out: Path, options: QuantizeOptions,
             progress: Progress) -> _Job:
    card = load_fp32_card(model_dir)
    adapter = adapter_for(backend)
    fp32 = adapter.read(model_dir)
    if adapter.is_quantized(fp32):
        raise ModelError("the model graph is already quantized (it holds quantize/dequantize operations); "
                         "quantize its FP32 export", path=model_dir)
    check_out(out, model_dir)
    nodes = adapter.nodes(fp32, card.layer_groups)
    user_kept = resolve(options.budget.keep_fp32, nodes, card.layer_groups)
    predictor = load_predictor(model_dir, backend=backend)
    warnings: list[str] = []
    cpu = detect_cpu()
    precision = _fallback(options.budget.fallback, backend, cpu, lambda m: (logger.warning(m), warnings.append(m)))
    reader = lambda path: read_image(path, 0)  # noqa: E731  the predictor's own reader
    val_set = load_validation_set(val, card, reader=reader, preprocess=predictor.preprocess,
                                  postprocess=predictor.postprocess)
    images = CalibrationImages(calib, image_files(calib), reader, lambda arrays: predictor.preprocess(arrays).batch)
    reduce_range = options.advanced.reduce_range if options.advanced.reduce_range is not None else not cpu.vnni
    job = _Job(model_dir, out, backend, options, card, adapter, fp32, nodes, [n for n in nodes if n.is_layer],
               user_kept, cpu, precision, reduce_range, val_set, images, [], progress, warnings, {})
    job.chosen = _choose(job)
    return job


def _choose(job: _Job) -> list[int]:
    options = job.options.calibration
    wanted = max([options.size, *options.sweep])
    features = None
    if options.select is not CalibSelect.RANDOM:
        features = _feature_fn(job.adapter, job.fp32, job.card)
    job.progress("choosing calibration images", 0, 1)
    chosen = choose_images(job.calib, options.select, wanted, seed=options.seed, features=features)
    if len(chosen) < options.size:
        job.warn(f"the calibration set has {len(chosen)} readable images, fewer than --calib-size "
                 f"{options.size}: calibrating on {len(chosen)}")
    if job.calib.skipped:
        job.warn(f"{len(job.calib.skipped)} calibration files could not be read and were skipped")
    if job.val.skipped:
        job.warn(f"{plural(len(job.val.skipped), 'validation image')} could not be read and "
                 f"{'was' if len(job.val.skipped) == 1 else 'were'} left out of every score")
    return chosen


@dataclasses.dataclass
class _Measured:
    """Models and figures gathered along the way."""

    metric: Metric
    fp32_score: float = 0.0
    int8_all: Any = None
    int8_all_score: float = 0.0
    sensitivity: Sensitivity | None = None
    sweep: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    final: Any = None
    final_score: float = 0.0
    kept: tuple[str, ...] = ()
    budget: BudgetOutcome | None = None

    def drop(self, score: float) -> float:
        """How much worse `score` is than FP32's, in the budget's unit."""
        return self.metric.drop(self.fp32_score, score)


def _timed(job: _Job, key: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    value = fn()
    job.timings[key] = job.timings.get(key, 0.0) + time.perf_counter() - start
    return value


def _baselines(job: _Job, measured: _Measured) -> None:
    calib_images = min(job.options.calibration.size, len(job.chosen))
    job.progress("FP32 accuracy", 0, 1)
    measured.fp32_score = _timed(job, "fp32_eval", lambda: job.score(job.fp32, PrecisionHint.FP32))
    job.progress(f"quantizing ({calib_images} images)", 0, 1)
    measured.int8_all = job.quantize(calib_images)
    job.progress("INT8 accuracy", 0, 1)
    measured.int8_all_score = _timed(job, "int8_eval", lambda: job.score(measured.int8_all))
    logger.info("%s: FP32 %.4f, INT8 (all layers) %.4f", job.val.metric.label, measured.fp32_score,
                measured.int8_all_score)


def _sensitivity(job: _Job, measured: _Measured) -> Sensitivity:
    count = min(job.options.budget.sensitivity_images, len(job.chosen))
    batch = job.calib.stack(job.chosen[:count])
    reference = job.run(job.fp32, PrecisionHint.FP32)(batch)
    switchable = job.adapter.switchable(measured.int8_all, job.fp32, job.layers)
    runner = job.adapter.runner(switchable, PrecisionHint.FP32)
    name = job.adapter.input_name(job.fp32)
    run = lambda mask: runner({name: batch, SWITCH: mask})  # noqa: E731
    outputs = {k: v for k, v in reference.items() if k != FEATURES}
    progress = lambda done, total: job.progress("layer sensitivity", done, total)  # noqa: E731
    return _timed(job, "sensitivity", lambda: rank_layers(
        lambda mask: {k: v for k, v in run(mask).items() if k in outputs}, outputs, job.layers,
        images=count, progress=progress))


def _met_without_ranking(job: _Job, measured: _Measured) -> bool:
    """True when INT8 everywhere already meets the budget: the search has nothing to rank
    (the ranking costs one inference per layer), so it is skipped and the report says so."""
    budget = job.options.budget.max_drop
    met = (budget is not None and not job.user_kept
           and measured.drop(measured.int8_all_score) <= budget)
    if met:
        logger.info("INT8 in every layer meets the %g %s budget: no layer ranking needed", budget, job.val.metric.unit)
    return met


def _sweep(job: _Job, measured: _Measured) -> list[dict[str, Any]]:
    rows = []
    for size in sorted(set(job.options.calibration.sweep)):
        if size > len(job.chosen):
            job.warn(f"--calib-sweep {size}: only {len(job.chosen)} calibration images available, size skipped")
            continue
        job.progress(f"calibration sweep: {size} images", 0, 1)
        start = time.perf_counter()
        same = size == min(job.options.calibration.size, len(job.chosen))
        score = measured.int8_all_score if same else job.score(job.quantize(size))
        rows.append({"images": size, "subset_size": nncf_subset_size(size), job.val.metric.key: score,
                     "drop": measured.drop(score), "seconds": time.perf_counter() - start})
    return rows


def _keep_only_user(job: _Job, measured: _Measured) -> None:
    """No budget: the saved model keeps exactly the user's --keep-fp32 nodes out of INT8."""
    if not job.user_kept:
        measured.final, measured.final_score = measured.int8_all, measured.int8_all_score
        return
    job.progress("quantizing with --keep-fp32", 0, 1)
    measured.final = job.quantize(min(job.options.calibration.size, len(job.chosen)), job.user_kept)
    measured.final_score = job.score(measured.final)
    measured.kept = tuple(n.name for n in job.user_kept if n.is_layer)


def _search(job: _Job, measured: _Measured) -> None:
    """Budget: keep the most sensitive layers FP32 until the measured drop fits."""
    user = [n for n in job.user_kept]
    user_layers = {n.name for n in user if n.is_layer}
    ranked = measured.sensitivity.order() if measured.sensitivity is not None else []
    order = [name for name in ranked if name not in user_layers]
    images = min(job.options.calibration.size, len(job.chosen))

    def bypass(kept: tuple[str, ...]) -> tuple[float, Any]:
        job.progress(f"budget search: {len(kept)} layers FP32", 0, 1)
        model = job.adapter.restore_fp32(measured.int8_all, job.fp32, user + job.nodes_of(kept))
        return job.score(model), model

    def requantize(kept: tuple[str, ...]) -> tuple[float, Any]:
        job.progress(f"re-quantizing with {len(kept)} layers FP32", 0, 1)
        model = job.quantize(images, user + job.nodes_of(kept))
        return job.score(model), model

    search = BudgetSearch(order, job.options.budget.max_drop, measured.drop, bypass=bypass, requantize=requantize)
    base = measured.int8_all if not user else job.quantize(images, user)
    search.add_all_int8(measured.int8_all_score if not user else job.score(base), base)
    outcome = _timed(job, "budget_search", search.run)
    measured.budget, measured.final, measured.final_score = outcome, outcome.model, outcome.best.score
    measured.kept = tuple(sorted(user_layers, key=[n.name for n in job.layers].index)) + outcome.best.kept
    if not outcome.reached:
        metric = job.val.metric
        job.warn(f"accuracy budget NOT reached: the best model found is {outcome.best.drop:.2f} {metric.unit} "
                 f"of {metric.label} worse than FP32 (budget {job.options.budget.max_drop:g}) with {len(measured.kept)} "
                 "layers FP32; it was saved anyway")


def _settle_fallback(job: _Job, measured: _Measured) -> PrecisionHint:
    """With bf16 searched, keep it only if its accuracy holds; fp32 otherwise."""
    if job.precision is not PrecisionHint.BF16:
        return job.precision
    fp32_fallback = job.score(measured.final, PrecisionHint.FP32)
    budget = job.options.budget.max_drop
    bf16_ok = budget is None or measured.drop(measured.final_score) <= budget
    if not bf16_ok and (budget is None or measured.drop(fp32_fallback) <= budget):
        job.warn("bf16 fallback missed the budget where fp32 fallback meets it: saved for fp32")
        measured.final_score = fp32_fallback
        return PrecisionHint.FP32
    return PrecisionHint.BF16


def _speed(job: _Job, paths: dict[str, Path], precision: PrecisionHint) -> list[Throughput]:
    if job.options.bench.seconds <= 0:
        return []
    cases = [SpeedCase("FP32", paths["FP32"], job.backend, PrecisionHint.FP32),
             SpeedCase("INT8 (all layers)", paths["INT8 (all layers)"], job.backend, precision),
             SpeedCase("saved", paths["saved"], job.backend, precision)]
    if precision is PrecisionHint.BF16:
        cases.append(SpeedCase("saved, fp32 fallback", paths["saved"], job.backend, PrecisionHint.FP32))
    job.progress("measuring throughput", 0, 1)
    return _timed(job, "throughput", lambda: measure_throughput(
        cases, job.val.first_batch(), seconds=job.options.bench.seconds, rounds=job.options.bench.rounds,
        options=BENCH_ENGINE))


def _speed_warnings(job: _Job, speeds: list[Throughput]) -> None:
    by = {s.label: s.images_per_s for s in speeds}
    if not by:
        return
    for label in ("INT8 (all layers)", "saved"):
        if by[label] <= by["FP32"]:
            job.warn(f"{label} is not faster than FP32 on this CPU: {by[label]:.1f} vs {by['FP32']:.1f} images/s "
                     f"(INT8 path {job.cpu.int8_path}; INT8 pays off with VNNI or AMX, and layers kept in FP32 "
                     "add conversions)")


def quantize(
    model_dir: str | os.PathLike[str],
    *,
    calib: str | os.PathLike[str],
    val: str | os.PathLike[str],
    backend: Backend | str = Backend.OPENVINO,
    out: str | os.PathLike[str],
    options: QuantizeOptions | None = None,
    progress: Progress | None = None,
) -> QuantizeResult:
    """Quantize an exported FP32 detection or counting model to INT8 (or mixed), measured.

    Args:
        model_dir: an exported model directory (model.xml or model.onnx + model_card.json).
        calib: calibration images: any detection or counting dataset or a folder of images.
        val: a labelled dataset of the model's task scoring every model: COCO, VOC or YOLO
            (detection, mAP@0.5); points JSON/CSV or ShanghaiTech (counting, MAE).
        backend: "openvino" (NNCF, IR out) or "onnxruntime" (QDQ ONNX out).
        out: the directory to write (replaced whole if it holds a previous result).
        options: see `QuantizeOptions`.
        progress: called as progress(stage, done, total).

    Raises:
        ModelError: no model or card, a model already quantized.
        DataError: calibration or validation data missing, unreadable, unlabelled, grayscale.
        ConfigError: a --keep-fp32 pattern naming nothing, a bad output directory.
    """
    options = options or QuantizeOptions()
    chosen_backend = as_backend(backend)
    if chosen_backend is None:
        raise ConfigError("a backend is required: openvino or onnxruntime")
    start = time.perf_counter()
    job = _prepare(Path(model_dir), Path(calib), Path(val), chosen_backend, Path(out), options,
                   progress or (lambda *_: None))
    measured = _Measured(job.val.metric)
    _baselines(job, measured)
    if options.budget.sensitivity and not _met_without_ranking(job, measured):
        measured.sensitivity = _sensitivity(job, measured)
    measured.sweep = _sweep(job, measured)
    if options.budget.max_drop is None:
        _keep_only_user(job, measured)
    else:
        _search(job, measured)
    precision = _settle_fallback(job, measured)
    result = _write(job, measured, precision)
    job.timings["total"] = time.perf_counter() - start
    return dataclasses.replace(result, report={**result.report, "timings": dict(job.timings)})


def _write(job: _Job, measured: _Measured, precision: PrecisionHint) -> QuantizeResult:
    with staging_dir(job.out) as staging, staging_dir(job.out) as scratch:
        files = job.adapter.save(measured.final, staging)
        job.adapter.save(measured.int8_all, scratch)
        paths = {"FP32": find_model_file(job.model_dir, job.backend),
                 "INT8 (all layers)": scratch / job.adapter.output_files[0], "saved": files[0]}
        speeds = _speed(job, paths, precision)
        _speed_warnings(job, speeds)
        report = _report(job, measured, precision, speeds)
        card = _card(job, measured, precision, speeds)
        card.save(staging / CARD_FILENAME)
        reporting.write_reports(staging, report, measured.sensitivity)
        replace_dir(staging, job.out)
    return QuantizeResult(
        job.out, tuple(sorted(job.out.iterdir())), card, job.val.metric, measured.fp32_score,
        measured.int8_all_score, measured.final_score, measured.drop(measured.final_score),
        measured.kept,
        None if measured.budget is None else measured.budget.reached, measured.sensitivity,
        {s.label: s.images_per_s for s in speeds}, report, tuple(job.warnings))


def _model_rows(job: _Job, measured: _Measured, precision: PrecisionHint, speeds: list[Throughput]) -> list[dict]:
    by = {s.label: s for s in speeds}
    fp32_speed = by["FP32"].images_per_s if by else None
    rows = [("FP32", measured.fp32_score, 0, "fp32"),
            ("INT8 (all layers)", measured.int8_all_score, 0, precision.value),
            ("saved", measured.final_score, len(measured.kept), precision.value)]
    if "saved, fp32 fallback" in by:
        rows.append(("saved, fp32 fallback", measured.final_score, len(measured.kept), "fp32"))
    out = []
    for label, score, kept, float_precision in rows:
        speed = by[label].images_per_s if label in by else None
        out.append({"label": label, job.val.metric.key: score, "drop": measured.drop(score),
                    "images_per_s": speed, "fp32_layers": kept, "precision": float_precision,
                    "speedup": None if speed is None or not fp32_speed else speed / fp32_speed})
    return out


def _calibration_facts(job: _Job) -> dict[str, Any]:
    images = min(job.options.calibration.size, len(job.chosen))
    return {"source": str(job.calib.source), "files": len(job.calib), "selection": job.options.calibration.select.value,
            "seed": job.options.calibration.seed, "images": images, "subset_size": nncf_subset_size(images),
            "chosen": [str(job.calib.files[i]) for i in job.chosen[:images]],
            "skipped": [f"{job.calib.files[i]}: {why}" for i, why in sorted(job.calib.skipped.items())],
            "grayscale": len(job.calib.grayscale), "preset": job.options.advanced.nncf_preset.value,
            "ort_method": job.options.advanced.ort_calibration.value, "per_channel": job.options.advanced.per_channel,
            "reduce_range": job.reduce_range}


def _other_kept(job: _Job) -> list[str]:
    """Non-layer nodes named by --keep-fp32 (adds, resizes...), without a conv's bias Add,
    which OpenVINO names like the conv itself."""
    layers = {n.name for n in job.layers}
    return list(dict.fromkeys(n.name for n in job.user_kept if not n.is_layer and n.name not in layers))


def _report(job: _Job, measured: _Measured, precision: PrecisionHint, speeds: list[Throughput]) -> dict[str, Any]:
    kept_other = _other_kept(job)
    return {
        "model_dir": str(job.model_dir), "out": str(job.out), "backend": job.backend.value,
        "cpu": job.cpu.to_dict(), "options": job.options.to_dict(),
        "fallback": {"requested": job.options.budget.fallback.value, "used": precision.value, "bf16_available": job.cpu.bf16},
        "metric": job.val.metric.to_dict(),
        "validation": {"source": str(job.val.source), "images": len(job.val),
                       "files": len(job.val) + len(job.val.skipped), "objects": job.val.objects,
                       "skipped": [f"{file}: {why}" for file, why in job.val.skipped]},
        "calibration": _calibration_facts(job),
        "models": _model_rows(job, measured, precision, speeds),
        "throughput": [s.to_dict() for s in speeds],
        "fp32_layers": list(measured.kept), "fp32_other_nodes": kept_other,
        "user_kept": list(dict.fromkeys(n.name for n in job.user_kept)),
        "sensitivity": None if measured.sensitivity is None else measured.sensitivity.to_dict(),
        "budget": None if measured.budget is None else measured.budget.to_dict(),
        "sweep": measured.sweep, "warnings": list(job.warnings), "timings": dict(job.timings),
    }


def _card(job: _Job, measured: _Measured, precision: PrecisionHint, speeds: list[Throughput]) -> ModelCard:
    key = job.val.metric.key
    metrics = {f"quant_fp32_{key}": measured.fp32_score, f"quant_int8_all_{key}": measured.int8_all_score,
               f"quant_{key}": measured.final_score, "quant_drop": measured.drop(measured.final_score),
               "quant_calibration_images": float(min(job.options.calibration.size, len(job.chosen)))}
    for speed in speeds:
        key = {"FP32": "fp32", "INT8 (all layers)": "int8_all", "saved": "saved"}.get(speed.label)
        if key is not None and math.isfinite(speed.images_per_s):
            metrics[f"quant_{key}_images_per_s"] = speed.images_per_s
    facts = {"backend": job.backend.value, "fallback_precision": precision.value,
             "metric": job.val.metric.to_dict(), "budget": job.options.budget.max_drop,
             "budget_reached": None if measured.budget is None else measured.budget.reached,
             "fp32_other_nodes": _other_kept(job),
             "calibration": {k: v for k, v in _calibration_facts(job).items() if k != "chosen"}}
    return quantized_card(job.card, kept=measured.kept, metrics=metrics, facts=facts)
