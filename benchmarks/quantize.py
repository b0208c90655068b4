"""INT8 post-training quantization of the slim RetinaNet: accuracy and throughput (issue 6).

    .venv/bin/python benchmarks/quantize.py exported/s0-onnx --calib data/train --val data/val \\
        --json quantize.json

MODEL_DIR is an ONNX export (`leanvision export RUN --format onnx`) of a slim RetinaNet
trained with the S0 recipe on synthetic cells (`benchmarks/train_s0.py`); the OpenVINO
rows use an IR converted from it. For each backend (OpenVINO through NNCF, ONNX Runtime
static QDQ) it measures, with mAP@0.5 on --val and throughput side by side in one run:

- FP32;
- INT8, every layer;
- INT8 with the FPN kept FP32 (`--keep-fp32 fpn`, S0's choice);
- INT8-auto: `quantize --max-drop BUDGET` (sensitivity ranking + budget search);
- NNCF's `quantize_with_accuracy_control` at the same budget (NNCF's own OpenVINO / ONNX
  backends; the ONNX one runs on ONNX Runtime).

Then, on OpenVINO: a calibration-size sweep (1, 32, 100, 300 as available) and random vs
similar vs diverse selection at equal size. Prints Markdown, then JSON (or writes it to
--json). `--quick` shrinks every size to validate the script in a minute or two.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.compression.quantize import (
    BudgetOptions,
    CalibrationOptions,
    QuantizeOptions,
    SpeedOptions,
    quantize,
)
from leanvision.compression.quantize.options import BENCH_ENGINE
from leanvision.compression.quantize.speed import SpeedCase, measure_throughput
from leanvision.core import CARD_FILENAME, ModelCard, Precision
from leanvision.core.io import atomic_write_text
from leanvision.data.formats import read_detection
from leanvision.evaluation.detection import evaluate_detections
from leanvision.runtime import Backend, PrecisionHint, load_predictor
from leanvision.runtime.hardware import detect_cpu

BACKENDS = (Backend.OPENVINO, Backend.ONNXRUNTIME)
SWEEP = (1, 32, 100, 300)


@dataclasses.dataclass
class Row:
    """One model of one backend."""

    backend: str
    model: str
    map50: float
    drop_points: float
    fp32_layers: int
    seconds: float
    path: Path | None = None
    images_per_s: float | None = None
    speedup: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["path"] = None if self.path is None else str(self.path)
        return data


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="ONNX export of the slim RetinaNet (model.onnx + card)")
    parser.add_argument("--calib", type=Path, required=True, help="calibration images (training set)")
    parser.add_argument("--val", type=Path, required=True, help="labelled validation set")
    parser.add_argument("--budget", type=float, default=0.5, help="accuracy budget, points of mAP@0.5")
    parser.add_argument("--calib-size", type=int, default=300)
    parser.add_argument("--select-size", type=int, default=32, help="images per selection method compared")
    parser.add_argument("--bench-seconds", type=float, default=5.0)
    parser.add_argument("--bench-rounds", type=int, default=3)
    parser.add_argument("--backends", default="openvino,onnxruntime")
    parser.add_argument("--work", type=Path, default=None, help="keep the models here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: validates the script")
    parser.add_argument("--no-sweep", action="store_true",
                        help="skip the OpenVINO calibration sweep and selection tables (e.g. an ORT-only run)")
    args = parser.parse_args()
    if args.quick:
        args.calib_size, args.select_size = min(args.calib_size, 8), min(args.select_size, 4)
        args.bench_seconds, args.bench_rounds = min(args.bench_seconds, 0.5), 1
    return args


def _machine() -> dict[str, Any]:
    cpu = detect_cpu()
    return {"cpu": cpu.to_dict(), "summary": cpu.summary(), "python": platform.python_version(),
            "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")}


def _ir_dir(onnx_dir: Path, work: Path) -> Path:
    """The ONNX export converted to an IR directory (FP32 weights), as `leanvision export` does."""
    import openvino as ov

    out = work / "fp32_ir"
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_dir / "model.onnx")), str(out / "model.xml"), compress_to_fp16=False)
    shutil.copy(onnx_dir / CARD_FILENAME, out / CARD_FILENAME)
    return out


def _options(args: argparse.Namespace, *, calibration: dict[str, Any] | None = None,
             budget: dict[str, Any] | None = None) -> QuantizeOptions:
    """The benchmark's base options (no throughput inside `quantize`, no ranking) with changes per group."""
    base = QuantizeOptions(calibration=CalibrationOptions(size=args.calib_size),
                           budget=BudgetOptions(sensitivity=False), bench=SpeedOptions(seconds=0))
    return dataclasses.replace(base, calibration=dataclasses.replace(base.calibration, **(calibration or {})),
                               budget=dataclasses.replace(base.budget, **(budget or {})))


def _run(backend: Backend, model_dir: Path, args: argparse.Namespace, out: Path, label: str,
         options: QuantizeOptions) -> tuple[Row, Any]:
    start = time.perf_counter()
    result = quantize(model_dir, calib=args.calib, val=args.val, backend=backend, out=out, options=options)
    row = Row(backend.value, label, result.score, result.drop, len(result.kept_layers),
              time.perf_counter() - start, out / ("model.xml" if backend is Backend.OPENVINO else "model.onnx"))
    print(f"  {backend.value} {label}: mAP@0.5 {row.map50:.4f} (drop {row.drop_points:.2f} points) in {row.seconds:.0f} s",
          file=sys.stderr)
    return row, result


class _Validation:
    """Scores any runnable model on --val through the FP32 model's predictor (NNCF QAC)."""

    def __init__(self, model_dir: Path, val: Path, backend: Backend) -> None:
        self.dataset = read_detection(val)
        self.predictor = load_predictor(model_dir, backend=backend)
        self.files = [str(self.dataset.image_path(r)) for r in self.dataset.images]

    def batch(self, index: int) -> np.ndarray:
        return self.predictor.preprocess([self.files[index]]).batch

    def map50(self, infer, indices) -> float:
        indices = list(indices)
        predictions = []
        for i in indices:
            prepared = self.predictor.preprocess([self.files[i]])
            predictions.extend(self.predictor.postprocess(infer(prepared.batch), prepared))
        records = [self.dataset.images[i] for i in indices]
        return evaluate_detections([r.targets for r in records], predictions,
                                   image_sizes=[(r.width, r.height) for r in records],
                                   class_names=self.dataset.classes).map50


def _infer_fn(backend: Backend, model: Any):
    """batch -> {output name: array} for what NNCF's validation_fn receives."""
    if backend is Backend.OPENVINO:  # an ov.CompiledModel
        return lambda batch: {port.get_any_name(): value for port, value in model(batch).items()}
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda batch: dict(zip(names, session.run(None, {session.get_inputs()[0].name: batch}), strict=True))


def _nncf_accuracy_control(backend: Backend, model_dir: Path, args: argparse.Namespace, fp32_map50: float,
                           out: Path) -> Row:
    """NNCF's own accuracy-aware PTQ at the same budget, same calibration count."""
    import nncf

    val = _Validation(model_dir, args.val, backend)
    calib_files = [str(p) for p in sorted(args.calib.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    calib_files = calib_files[: args.calib_size]

    def validation_fn(model: Any, items) -> tuple[float, list]:
        # A per-image mAP is not defined (negatives): NNCF then ranks layers by outputs.
        infer, indices = _infer_fn(backend, model), list(items)
        outputs = [list(infer(val.batch(i)).values()) for i in indices]
        return val.map50(infer, indices), outputs

    if backend is Backend.OPENVINO:
        import openvino as ov

        fp32 = ov.Core().read_model(str(model_dir / "model.xml"))
    else:
        import onnx

        fp32 = onnx.load(str(model_dir / "model.onnx"))
    # NNCF's ONNX backend runs the model with {input name: array}; its OpenVINO backend with
    # the array itself.
    feed = (lambda b: b) if backend is Backend.OPENVINO else (lambda b, name=fp32.graph.input[0].name: {name: b})
    calibration = nncf.Dataset(calib_files, lambda f: feed(val.predictor.preprocess([f]).batch))
    validation = nncf.Dataset(list(range(len(val.files))), lambda i: feed(val.batch(i)))
    start = time.perf_counter()
    quantized = nncf.quantize_with_accuracy_control(
        fp32, calibration, validation, validation_fn, max_drop=args.budget / 100.0,
        drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calib_files), preset=nncf.QuantizationPreset.PERFORMANCE)
    seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    if backend is Backend.OPENVINO:
        import openvino as ov

        ov.save_model(quantized, str(out / "model.xml"), compress_to_fp16=False)
        path = out / "model.xml"
    else:
        import onnx

        onnx.save(quantized, str(out / "model.onnx"))
        path = out / "model.onnx"
    ModelCard.load(model_dir).replace(precision=Precision.MIXED).save(out / CARD_FILENAME)
    with load_predictor(out, backend=backend) as predictor:
        map50 = val.map50(lambda b: predictor.engine.infer(b), range(len(val.files)))
    print(f"  {backend.value} NNCF accuracy control: mAP@0.5 {map50:.4f} in {seconds:.0f} s", file=sys.stderr)
    return Row(backend.value, f"NNCF quantize_with_accuracy_control ({args.budget:g})", map50,
               100 * (fp32_map50 - map50), -1, seconds, path)


def _backend_rows(backend: Backend, model_dir: Path, args: argparse.Namespace, work: Path) -> list[Row]:
    """The five models of one backend, then their throughput side by side."""
    base = work / backend.value
    all_row, all_result = _run(backend, model_dir, args, base / "int8_all", "INT8 (all layers)", _options(args))
    fpn_row, _ = _run(backend, model_dir, args, base / "int8_fpn_fp32", "INT8, FPN FP32",
                      _options(args, budget={"keep_fp32": ("fpn",)}))
    auto_row, auto = _run(backend, model_dir, args, base / "int8_auto", f"INT8-auto (budget {args.budget:g})",
                          _options(args, budget={"max_drop": args.budget, "sensitivity": True}))
    fp32_file = model_dir / ("model.xml" if backend is Backend.OPENVINO else "model.onnx")
    fp32_row = Row(backend.value, "FP32", all_result.fp32_score, 0.0, -1, 0.0, fp32_file)
    rows = [fp32_row, all_row, fpn_row, auto_row]
    try:
        rows.append(_nncf_accuracy_control(backend, model_dir, args, all_result.fp32_score, base / "nncf_qac"))
    except Exception as exc:  # a library failure is a finding of the benchmark, not its end
        print(f"  {backend.value} NNCF accuracy control failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    _throughput(backend, rows, args)
    auto_top = [s.layer for s in auto.sensitivity.layers[:10]] if auto.sensitivity else []
    print(f"  {backend.value} most sensitive layers: {', '.join(auto_top)}", file=sys.stderr)
    return rows


def _throughput(backend: Backend, rows: list[Row], args: argparse.Namespace) -> None:
    cases = [SpeedCase(r.model, r.path, backend, PrecisionHint.FP32) for r in rows if r.path is not None]
    with load_predictor(rows[0].path.parent, backend=backend) as predictor:
        image = np.full((predictor.card.input.height, predictor.card.input.width, 3), 128, np.uint8)
        batch = predictor.preprocess([image]).batch
    speeds = {s.label: s.images_per_s for s in measure_throughput(
        cases, batch, seconds=args.bench_seconds, rounds=args.bench_rounds, options=BENCH_ENGINE)}
    for row in rows:
        row.images_per_s = speeds.get(row.model)
        row.speedup = None if row.images_per_s is None else row.images_per_s / speeds["FP32"]


def _sweep(ir_dir: Path, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    sizes = tuple(s for s in SWEEP if not args.quick or s <= 4) or (1,)
    result = quantize(ir_dir, calib=args.calib, val=args.val, backend=Backend.OPENVINO, out=work / "sweep",
                      options=_options(args, calibration={"sweep": sizes, "size": sizes[-1]}))
    return result.report["sweep"]


def _selection(ir_dir: Path, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    rows = []
    for method in ("random", "similar", "diverse"):
        start = time.perf_counter()
        result = quantize(ir_dir, calib=args.calib, val=args.val, backend=Backend.OPENVINO, out=work / f"select_{method}",
                          options=_options(args, calibration={"size": args.select_size, "select": method}))
        rows.append({"selection": method, "images": result.report["calibration"]["images"],
                     "map50": result.int8_all_score,
                     "drop_points": result.metric.drop(result.fp32_score, result.int8_all_score),
                     "seconds": time.perf_counter() - start})
    return rows


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _markdown(results: dict[str, Any]) -> str:
    lines = [f"Machine: {results['machine']['summary']} ({results['machine']['date_utc']} UTC)", "",
             "| backend | model | mAP@0.5 | drop (points) | FP32 layers | images/s | vs FP32 | time (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["models"]:
        layers = "-" if r["fp32_layers"] < 0 else str(r["fp32_layers"])
        speedup = "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        lines.append(f"| {r['backend']} | {r['model']} | {_fmt(r['map50'])} | {_fmt(r['drop_points'], 2)} | {layers} | "
                     f"{_fmt(r['images_per_s'], 1)} | {speedup} | {_fmt(r['seconds'], 0)} |")
    lines += ["", "Calibration-size sweep (OpenVINO, every layer INT8, random selection):", "",
              "| images | mAP@0.5 | drop (points) |", "|---|---|---|"]
    lines += [f"| {s['images']} | {_fmt(s['map50'])} | {_fmt(s['drop'], 2)} |" for s in results["sweep"]]
    lines += ["", "Selection at equal size (OpenVINO, every layer INT8):", "",
              "| selection | images | mAP@0.5 | drop (points) |", "|---|---|---|---|"]
    lines += [f"| {s['selection']} | {s['images']} | {_fmt(s['map50'])} | {_fmt(s['drop_points'], 2)} |"
              for s in results["selection"]]
    return "\n".join(lines)


def main() -> None:
    args = _args()
    temporary = args.work is None
    work = Path(tempfile.mkdtemp(prefix="leanvision-quant-bench-")) if temporary else args.work
    try:
        ir_dir = _ir_dir(args.model_dir, work)
        dirs = {Backend.OPENVINO: ir_dir, Backend.ONNXRUNTIME: args.model_dir}
        backends = [Backend(b) for b in args.backends.split(",")]
        rows = [row for b in backends for row in _backend_rows(b, dirs[b], args, work)]
        results = {"machine": _machine(), "args": {k: str(v) for k, v in vars(args).items()},
                   "models": [r.to_dict() for r in rows],
                   "sweep": [] if args.no_sweep else _sweep(ir_dir, args, work),
                   "selection": [] if args.no_sweep else _selection(ir_dir, args, work)}
    finally:
        if temporary:
            shutil.rmtree(work, ignore_errors=True)
    print(_markdown(results))
    text = json.dumps(results, indent=2, default=str)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
