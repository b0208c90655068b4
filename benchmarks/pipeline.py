"""Large-image pipeline benchmarks: every figure of issue 7, as a Markdown table and JSON.

Rows (`--rows`, comma-separated; each measurement runs in a fresh child process, so peak
RSS and start-up are its own; model loading/compilation is not timed):

- `naive`    the naive loop with the same model and tiles: cv2.imread of the whole image,
             crop + resize each window, synchronous batch-1 inference tile by tile, same merge;
- `pipeline` `run_pipeline` (reader processes, shared memory, batching, async requests);
             with the ratio to `naive` and the CPU seconds of each stage;
- `model`    pure model throughput on the same tiles already in memory, over `--model-batches`
             x `--model-requests` (engine only, and with pre/post-processing), and the
             pipeline / best-model ratio;
- `sweep`    the pipeline over `--sweep-readers` x `--sweep-batch` x `--sweep-requests`
             (how the defaults in docs/large-images.md were chosen);
- `timeline` S0's table on synthetic slides: R50 FP32 naive -> batch -> async requests ->
             slim MbV2 FP32 -> INT8 -> the pipeline's batch and requests -> reader processes
             -> drop border + 1600 px windows (`--r50`, `--slim-fp32` and `--model` (slim
             INT8) model directories);
- `sahi`     SAHI `get_sliced_prediction` with the same ONNX model wrapped as a SAHI detection
             model, in its own venv (`--sahi-venv`, created if absent: SAHI needs opencv-python,
             which clashes with our opencv-python-headless), with SAHI's defaults (0.2 overlap,
             GREEDYNMM/IOS, full-image pass) and with settings matched to ours; our pipeline on
             the same ONNX model (ONNX Runtime for both); recall against ground truth;
- `rss`      peak RSS of the pipeline on a `--rss-size` slide (40000 px: the <= 1.5 GB target;
             writing that slide takes minutes and ~5 GB of temporary disk, once, in `--work`);
- `readers`  the reader table (runs benchmarks/readers.py).

Slides come from `--slides-dir` (a COCO folder: images/ + annotations.json) or are written
by `leanvision.data.synth.synthesize(Task.DETECT, ..., slides=K, slide_size=S)` into `--work`.

Usage:
    python benchmarks/pipeline.py --model m/slim_int8 --onnx-model m/slim_onnx \\
        --rows naive,pipeline,model,sahi --slides 2 --slide-size 12000        # the lead
    python benchmarks/pipeline.py --rows timeline --r50 m/r50_fp32 --slim-fp32 m/slim_fp32 \\
        --model m/slim_int8
    python benchmarks/pipeline.py --model m/slim_int8 --rows rss --rss-size 40000
    python benchmarks/pipeline.py --model DIR --slide-size 3000 --slides 1 \\
        --rows naive,pipeline,model --model-batches 1 --model-requests 1,2   # quick check
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_READERS = 2  # leanvision.largeimage.pipeline.options.DEFAULT_READERS, for labels
DEFAULT_BATCH = 1  # leanvision.largeimage.pipeline.options.DEFAULT_BATCH

# ---------------------------------------------------------------- children (fresh processes)


def _peak_rss_mb() -> float:
    from leanvision.core.resources import peak_rss_mb

    return peak_rss_mb()


def _predictor(spec: dict, *, requests: int | None, throughput: bool):
    from leanvision.runtime import EngineOptions, PerformanceHint, load_predictor

    hint = PerformanceHint.THROUGHPUT if throughput else PerformanceHint.LATENCY
    return load_predictor(spec["model"], backend=spec.get("backend"),
                          options=EngineOptions(num_requests=requests, performance=hint))


def _tiling(spec: dict):
    from leanvision.largeimage.pipeline import TilingOptions

    return TilingOptions(window=spec["window"], overlap=spec.get("overlap", 0), drop_border=spec.get("drop_border", 0))


def _as_rows(dets) -> list[list[float]]:
    return np.c_[dets.boxes, dets.scores, dets.labels].round(3).tolist()


def _whole_image_tiles(path: Path, tiling, input_wh: tuple[int, int]) -> tuple[list, tuple[int, int], Iterator[np.ndarray]]:
    """S0's / SAHI's reading: cv2.imread of the whole image, then crop + resize per window.

    Returns the tiles, the image (w, h) and an iterator of each tile's model input.
    """
    import cv2

    image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    size = (image.shape[1], image.shape[0])
    tiles = tiling.plan(size, input_wh)

    def pixels() -> Iterator[np.ndarray]:
        padded = np.zeros((tiles[0].h, tiles[0].w, 3), np.uint8)
        for tile in tiles:
            crop = image[tile.y : tile.y + tile.h, tile.x : tile.x + tile.w]
            if crop.shape[:2] != (tile.h, tile.w):  # smaller than the window: pad like our readers
                padded[:] = 0
                padded[: crop.shape[0], : crop.shape[1]] = crop
                crop = padded
            yield cv2.resize(crop, input_wh, interpolation=cv2.INTER_AREA)

    return tiles, size, pixels()


def _infer_tile(predictor: Any, tile: np.ndarray) -> Any:
    """One tile already at the model's scale (read from a window), synchronously."""
    prepared = predictor.preprocess([tile], at_input_scale=True)
    return predictor.postprocess(predictor.engine.infer(prepared.batch), prepared)[0]


def child_naive(spec: dict) -> dict:
    """Synchronous batch-1 inference tile by tile over whole-image decodes."""
    from leanvision.largeimage.pipeline.options import PipelineOptions
    from leanvision.largeimage.pipeline.tasks import merge_tiles

    predictor = _predictor(spec, requests=1, throughput=False)
    input_wh, tiling, merge = (predictor.card.input.width, predictor.card.input.height), _tiling(spec), PipelineOptions().merge
    detections, count = {}, 0
    start = time.perf_counter()
    for name in spec["files"]:
        tiles, size, pixels = _whole_image_tiles(Path(name), tiling, input_wh)
        per_tile = [_infer_tile(predictor, tile) for tile in pixels]
        detections[name] = _as_rows(merge_tiles(per_tile, tiles, size, merge))
        count += len(per_tile)
    return {"seconds": time.perf_counter() - start, "tiles": count, "detections": detections, "peak_rss_mb": _peak_rss_mb()}


def child_loop(spec: dict) -> dict:
    """S0 before reader processes: whole-image cv2 decode in the main thread, then batches
    and requests in flight through the same InferenceRunner as the pipeline."""
    from leanvision.largeimage.pipeline.infer import InferenceRunner
    from leanvision.largeimage.pipeline.options import PipelineOptions
    from leanvision.largeimage.pipeline.stats import StageClock
    from leanvision.largeimage.pipeline.tasks import merge_tiles

    requests = spec["requests"]  # None: the engine's optimal number, as the pipeline does
    predictor = _predictor(spec, requests=requests, throughput=requests is None or requests > 1)
    requests = requests or predictor.max_in_flight
    input_wh, tiling = (predictor.card.input.width, predictor.card.input.height), _tiling(spec)
    results: dict[tuple[int, int], Any] = {}
    runner = InferenceRunner(predictor, batch=spec["batch"], requests=requests, clock=StageClock(),
                             on_result=results.__setitem__)
    detections, count, plans = {}, 0, {}
    start = time.perf_counter()
    for i, name in enumerate(spec["files"]):
        tiles, size, pixels = _whole_image_tiles(Path(name), tiling, input_wh)
        plans[i] = (tiles, size)
        for index, tile in enumerate(pixels):
            runner.add((i, index), tile)
    runner.finish()
    for i, name in enumerate(spec["files"]):
        tiles, size = plans[i]
        per_tile = [results[(i, k)] for k in range(len(tiles))]
        detections[name] = _as_rows(merge_tiles(per_tile, tiles, size, PipelineOptions().merge))
        count += len(tiles)
    seconds = time.perf_counter() - start
    runner.close()
    return {"seconds": seconds, "tiles": count, "detections": detections, "peak_rss_mb": _peak_rss_mb(),
            "requests": requests}


def child_pipeline(spec: dict) -> dict:
    from leanvision.largeimage.pipeline import PipelineOptions, run_pipeline

    options = PipelineOptions.from_dict(spec["options"])
    predictor = _predictor(spec, requests=options.requests, throughput=True)
    summary = run_pipeline(predictor, spec["files"], options=options)
    return {
        "seconds": summary.seconds, "tiles": summary.tiles, "images": summary.images,
        "failed": [f"{f.path}: {f.reason}" for f in summary.failed],
        "stage_seconds": summary.stage_seconds, "stage_cpu_seconds": summary.stage_cpu_seconds,
        "peak_rss_mb": summary.peak_rss_mb, "requests": predictor.max_in_flight,
        "detections": {os.fspath(p): _as_rows(r.detections) for p, r in summary.results.items()},
    }


def _memory_tiles(spec: dict, input_wh: tuple[int, int]) -> list[np.ndarray]:
    from leanvision.largeimage.readers import open_reader

    tiles, tiling = [], _tiling(spec)
    for name in spec["files"]:
        with open_reader(name) as reader:
            for t in tiling.plan(reader.size, input_wh):
                tiles.append(reader.read(*t.window, t.out_w, t.out_h))
                if len(tiles) >= spec["max_tiles"]:
                    return tiles
    return tiles


def _engine_only(predictor, prepared: list, requests: int) -> float:
    """Seconds to push preprocessed batches through submit with `requests` in flight."""
    import threading

    slots = threading.Semaphore(requests)
    start = time.perf_counter()
    for batch in prepared:
        slots.acquire()
        predictor.submit(batch, lambda raw: slots.release())
    predictor.wait_all()
    return time.perf_counter() - start


def _with_stages(predictor, tiles: list[np.ndarray], batch: int, requests: int) -> float:
    from leanvision.largeimage.pipeline.infer import InferenceRunner
    from leanvision.largeimage.pipeline.stats import StageClock

    runner = InferenceRunner(predictor, batch=batch, requests=requests, clock=StageClock(), on_result=lambda k, d: None)
    start = time.perf_counter()
    for i, tile in enumerate(tiles):
        runner.add((0, i), tile)
    runner.finish()
    seconds = time.perf_counter() - start
    runner.close()
    return seconds


def child_model(spec: dict) -> dict:
    """Pure model throughput on tiles already in memory, per (batch, requests)."""
    probe = _predictor(spec, requests=1, throughput=False)
    input_wh = (probe.card.input.width, probe.card.input.height)
    tiles = _memory_tiles(spec, input_wh)
    rows = []
    for requests in spec["requests"]:
        predictor = _predictor(spec, requests=requests, throughput=requests > 1)
        predictor([tiles[0]])  # warm-up
        for batch in spec["batches"]:
            prepared = [predictor.preprocess(tiles[i : i + batch], at_input_scale=True)
                        for i in range(0, len(tiles), batch)]
            engine = _engine_only(predictor, prepared, requests)
            staged = _with_stages(predictor, tiles, batch, requests)
            rows.append({"batch": batch, "requests": requests, "engine_tiles_per_s": len(tiles) / engine,
                         "staged_tiles_per_s": len(tiles) / staged})
    return {"tiles": len(tiles), "rows": rows, "peak_rss_mb": _peak_rss_mb()}


CHILDREN = {"naive": child_naive, "loop": child_loop, "pipeline": child_pipeline, "model": child_model}


def run_child(kind: str, spec: dict, args: argparse.Namespace) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps({"kind": kind, **spec})],
                            capture_output=True, text=True, env=env, timeout=args.timeout)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- slides and ground truth


def prepare_slides(args: argparse.Namespace, size: int | None = None, count: int | None = None) -> Path:
    """A COCO slides folder: `--slides-dir`, or synthetic slides written once into `--work`."""
    if args.slides_dir is not None and size is None:
        return args.slides_dir
    size, count = size or args.slide_size, count or args.slides
    out = args.work / f"synth_{size}_{count}"
    if not (out / "slides" / "annotations.json").is_file():
        from leanvision.core import Task
        from leanvision.data.synth import synthesize

        print(f"writing {count} synthetic slide(s) of {size} px into {out} ...", file=sys.stderr, flush=True)
        synthesize(Task.DETECT, out, images=1, slides=count, slide_size=size, overwrite=True)
    return out / "slides"


def slide_files(slides: Path, fmt: str) -> list[str]:
    suffixes = {"jpg": (".jpg",), "tif": (".tif",), "both": (".jpg", ".tif")}[fmt]
    return [str(p) for p in sorted((slides / "images").iterdir()) if p.suffix.lower() in suffixes]


def ground_truth(slides: Path) -> dict[str, np.ndarray]:
    from leanvision.data.formats import read_detection

    dataset = read_detection(slides)
    return {str(Path(dataset.image_root) / r.file_name): r.targets.boxes for r in dataset.images}


def recall(found: dict[str, list], truth: dict[str, np.ndarray], *, score: float, iou: float) -> float | None:
    """Fraction of ground-truth boxes matched one-to-one (best score first) at IoU >= iou by
    detections scoring >= score, over the files in `found`."""
    from leanvision.core.boxes import box_iou

    hits = total = 0
    for name, rows in found.items():
        gt = truth.get(str(Path(name)))
        if gt is None:
            return None
        dets = np.asarray(rows, np.float64).reshape(-1, 6)
        dets = dets[np.argsort(-dets[:, 4], kind="stable")]
        dets = dets[dets[:, 4] >= score]
        total += len(gt)
        if not len(gt) or not len(dets):
            continue
        overlaps, free = box_iou(dets[:, :4], gt), np.ones(len(gt), bool)
        for row in overlaps:
            best = np.where(free, row, -1).argmax()
            if row[best] >= iou and free[best]:
                free[best], hits = False, hits + 1
    return hits / total if total else None


# ---------------------------------------------------------------- rows (parent)


def _base(args: argparse.Namespace, files: list[str], model: str | None = None, backend: str | None = None) -> dict:
    return {"model": model or args.model, "backend": backend or args.backend, "files": files,
            "window": args.window, "overlap": args.overlap, "drop_border": args.drop_border}


def _pipeline_options(args: argparse.Namespace, **changes: Any) -> dict:
    options = {"tiling": {"window": args.window, "overlap": args.overlap, "drop_border": args.drop_border},
               "readers": args.readers, "batch": args.batch, "requests": args.requests}
    for key, value in changes.items():
        if key in ("window", "overlap", "drop_border"):
            options["tiling"][key] = value
        else:
            options[key] = value
    return {k: v for k, v in options.items() if v is not None}


def _row(name: str, result: dict, truth: dict, args: argparse.Namespace, **extra: Any) -> dict:
    row = {"row": name, **extra, **{k: v for k, v in result.items() if k != "detections"}}
    if "error" not in result:
        row["tiles_per_s"] = result["tiles"] / result["seconds"]
        row["recall"] = recall(result.get("detections", {}), truth, score=args.score, iou=args.iou)
    return row


def rows_naive_pipeline(args: argparse.Namespace, files: list[str], truth: dict) -> list[dict]:
    naive = _row("naive loop (cv2.imread, resize, sync batch 1)", run_child("naive", _base(args, files), args), truth, args)
    spec = {**_base(args, files), "options": _pipeline_options(args)}
    pipe = _row("leanvision pipeline", run_child("pipeline", spec, args), truth, args)
    if "error" not in naive and "error" not in pipe:
        pipe["speedup_vs_naive"] = naive["seconds"] / pipe["seconds"]
    return [naive, pipe]


def rows_model(args: argparse.Namespace, files: list[str], truth: dict) -> list[dict]:
    """Pure model rows and the pipeline, alternated `--repeat` times (this machine's
    throughput drifts by 10-20 % between runs): medians, and each run's ratio."""
    spec = {**_base(args, files), "batches": args.model_batches, "requests": args.model_requests, "max_tiles": args.model_tiles}
    pipe_spec = {**_base(args, files), "options": _pipeline_options(args)}
    models, pipes = [], []
    for _ in range(args.repeat):
        model = run_child("model", spec, args)
        if "error" in model:
            return [{"row": "pure model", **model}]
        models.append(model["rows"])
        pipes.append(_row("leanvision pipeline", run_child("pipeline", pipe_spec, args), truth, args))
        if "error" in pipes[-1]:
            return [pipes[-1]]
    configs = [(r["batch"], r["requests"]) for r in models[0]]
    rows = []
    for k, (batch, requests) in enumerate(configs):
        engine = [run[k]["engine_tiles_per_s"] for run in models]
        staged = [run[k]["staged_tiles_per_s"] for run in models]
        rows.append({"row": f"pure model (batch {batch}, requests {requests})", "tiles_per_s": statistics.median(engine),
                     "staged_tiles_per_s": statistics.median(staged), "engine_runs": engine, "staged_runs": staged})
    pipe = dict(sorted(pipes, key=lambda p: p["tiles_per_s"])[len(pipes) // 2])  # the median run (odd --repeat)
    pipe["runs_tiles_per_s"] = [p["tiles_per_s"] for p in pipes]
    best_engine = max(r["tiles_per_s"] for r in rows)
    best_staged = max(r["staged_tiles_per_s"] for r in rows)
    pipe["ratio_to_model_engine_only"] = pipe["tiles_per_s"] / best_engine
    pipe["ratio_to_model_with_pre_post"] = pipe["tiles_per_s"] / best_staged
    pipe["ratio_runs_engine_only"] = [p["tiles_per_s"] / max(r["engine_tiles_per_s"] for r in run)
                                      for p, run in zip(pipes, models, strict=True)]
    return [*rows, pipe]


def rows_sweep(args: argparse.Namespace, files: list[str], truth: dict) -> list[dict]:
    rows = []
    for readers in args.sweep_readers:
        for batch in args.sweep_batch:
            for requests in args.sweep_requests:
                options = _pipeline_options(args, readers=readers, batch=batch, requests=requests)
                result = run_child("pipeline", {**_base(args, files), "options": options}, args)
                rows.append(_row(f"pipeline readers {readers} batch {batch} requests {requests}", result, truth, args))
    return rows


def timeline_steps(args: argparse.Namespace, images: int) -> list[tuple[str, str, str | None, dict]]:
    """S0's steps for `images` slides: (label, child kind, model dir, changes to the base spec)."""
    early = {"window": args.timeline_window, "drop_border": 0}
    late = {"window": args.window, "drop_border": args.drop_border}
    batch, requests = args.timeline_batch, args.timeline_requests
    loop = {**early, "batch": batch, "requests": requests}
    # S0's batch and requests carry through its later steps; on a machine where they do not
    # pay, the row after INT8 goes back to the pipeline's batch and requests (--batch,
    # --requests; default batch 1 and the engine's optimal requests), one change per row.
    own = {"batch": args.batch or DEFAULT_BATCH, "requests": args.requests}  # None: the engine's optimum
    return [
        ("R50 FP32, naive loop (sync, batch 1)", "naive", args.r50, early),
        (f"+ batch {batch}", "loop", args.r50, {**early, "batch": batch, "requests": 1}),
        (f"+ {requests} async requests", "loop", args.r50, loop),
        ("slim MbV2 FP32", "loop", args.slim_fp32, loop),
        ("slim MbV2 INT8", "loop", args.model, loop),
        (f"+ batch {own['batch']}, {own['requests'] or 'optimal'} requests (the pipeline's)", "loop", args.model,
         {**early, **own}),
        (f"+ reader processes ({min(args.readers or DEFAULT_READERS, images)} for {images} slide(s); reduced decode, "
         "shared memory)", "pipeline", args.model,
         {"options": _pipeline_options(args, **early, **own)}),
        (f"+ drop border {args.drop_border} px, {args.window} px windows", "pipeline", args.model,
         {"options": _pipeline_options(args, **late, **own)}),
    ]


def rows_timeline(args: argparse.Namespace, files: list[str], truth: dict) -> list[dict]:
    rows, first = [], None
    for label, kind, model, changes in timeline_steps(args, len(files)):
        if model is None:
            rows.append({"row": f"timeline: {label}", "error": "model directory not given"})
            continue
        result = run_child(kind, {**_base(args, files, model), **changes}, args)
        row = _row(f"timeline: {label}", result, truth, args)
        if "error" not in row:
            first = first or row["seconds"]
            row["speedup_vs_first"] = first / row["seconds"]
        rows.append(row)
    return rows


SAHI_RUNNER = r'''
"""Runs in the SAHI venv: our ONNX model wrapped as a SAHI DetectionModel."""
import json, sys, time
import numpy as np
from sahi.models.base import DetectionModel
from sahi.prediction import ObjectPrediction
from sahi.predict import get_sliced_prediction
from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list
from leanvision.runtime import load_predictor


class LeanVisionOnnx(DetectionModel):
    def load_model(self):
        self.model = load_predictor(self.model_path, backend="onnxruntime")
        self.category_mapping = {str(i): n for i, n in enumerate(self.model.card.class_names)}

    def perform_inference(self, image):
        self._original_predictions = self.model([np.ascontiguousarray(image[..., :3])])[0]

    def _create_object_prediction_list_from_original_predictions(self, shift_amount_list=None, full_shape_list=None):
        shift_amount_list = fix_shift_amount_list(shift_amount_list)  # SAHI passes [x, y] or [[x, y]]
        full_shape_list = fix_full_shape_list(full_shape_list)
        dets = self._original_predictions
        full = full_shape_list[0] if full_shape_list else None
        keep = dets.scores >= self.confidence_threshold
        self._object_prediction_list_per_image = [[
            ObjectPrediction(bbox=[float(v) for v in box], category_id=int(label),
                             category_name=self.category_mapping[str(int(label))], score=float(score),
                             shift_amount=shift_amount_list[0], full_shape=full)
            for box, score, label in zip(dets.boxes[keep], dets.scores[keep], dets.labels[keep])]]


def slices(name, spec):
    """Model calls SAHI makes for this image: its slices, plus the full-image pass."""
    from PIL import Image
    from sahi.slicing import get_slice_bboxes

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(name) as image:
        width, height = image.size
    s = spec["settings"]
    boxes = get_slice_bboxes(height, width, spec["window"], spec["window"], overlap_height_ratio=s["overlap_height_ratio"],
                             overlap_width_ratio=s["overlap_width_ratio"])
    return len(boxes) + int(s["perform_standard_pred"])


spec = json.loads(sys.argv[1])
model = LeanVisionOnnx(model_path=spec["model"], confidence_threshold=spec["score_threshold"], device="cpu")
detections, seconds, tiles = {}, 0.0, 0
for name in spec["files"]:
    tiles += slices(name, spec)
    start = time.perf_counter()
    result = get_sliced_prediction(name, model, slice_height=spec["window"], slice_width=spec["window"],
                                   verbose=0, **spec["settings"])
    seconds += time.perf_counter() - start
    detections[name] = [[p.bbox.minx, p.bbox.miny, p.bbox.maxx, p.bbox.maxy, p.score.value, p.category.id]
                        for p in result.object_prediction_list]
# VmHWM, not ru_maxrss (which carries the parent's peak across exec); SAHI's venv has no leanvision.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"seconds": seconds, "tiles": tiles, "detections": detections,
                  "peak_rss_mb": int(hwm) / 1024}))
'''

SAHI_DEFAULTS = {"overlap_height_ratio": 0.2, "overlap_width_ratio": 0.2, "perform_standard_pred": True,
                 "postprocess_type": "GREEDYNMM", "postprocess_match_metric": "IOS", "postprocess_match_threshold": 0.5}


def ensure_sahi_venv(venv: Path) -> Path:
    """The SAHI venv's python, created on first use (sahi, onnxruntime, pyyaml from PyPI)."""
    python = venv / "bin" / "python"
    if not python.is_file():
        print(f"creating {venv} for SAHI ...", file=sys.stderr, flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "sahi", "onnxruntime", "pyyaml"], check=True)
    return python


def _run_sahi(python: Path, spec: dict, args: argparse.Namespace) -> dict:
    runner = args.work / "sahi_runner.py"
    runner.parent.mkdir(parents=True, exist_ok=True)
    runner.write_text(SAHI_RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(os.cpu_count())}
    result = subprocess.run([str(python), str(runner), json.dumps(spec)], capture_output=True, text=True, env=env,
                            timeout=args.timeout)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def rows_sahi(args: argparse.Namespace, files: list[str], truth: dict) -> list[dict]:
    """SAHI defaults, SAHI matched to our settings, and our pipeline: one ONNX model on ORT."""
    from leanvision.core import ModelCard

    onnx_dir = args.onnx_model or args.model
    jpegs = [f for f in files if f.lower().endswith(".jpg")] or files
    threshold = ModelCard.load(onnx_dir).postprocess.score_threshold
    python = ensure_sahi_venv(args.sahi_venv)
    overlap = args.overlap / args.window
    matched = {"overlap_height_ratio": overlap, "overlap_width_ratio": overlap, "perform_standard_pred": False,
               "postprocess_type": "NMS", "postprocess_match_metric": "IOS", "postprocess_match_threshold": 0.5}
    base = {"model": onnx_dir, "files": jpegs, "window": args.window, "score_threshold": threshold}
    rows = [_row(f"SAHI {name}", _run_sahi(python, {**base, "settings": settings}, args), truth, args)
            for name, settings in (("defaults (0.2 overlap, GREEDYNMM/IOS, full-image pass)", SAHI_DEFAULTS),
                                   ("matched to ours (NMS/IOS, no full-image pass)", matched))]
    ours = run_child("pipeline", {**_base(args, jpegs, onnx_dir, "onnxruntime"), "options": _pipeline_options(args)}, args)
    rows.append(_row("leanvision pipeline (same ONNX model, ONNX Runtime)", ours, truth, args))
    for row in rows[:2]:
        if "error" not in row and "error" not in ours:
            row["leanvision_speedup"] = row["seconds"] / ours["seconds"]
    return rows


def rows_rss(args: argparse.Namespace, files: list[str], truth: dict) -> list[dict]:
    slides = prepare_slides(args, size=args.rss_size, count=1)
    rows = []
    for name in slide_files(slides, args.format):
        kind = Path(name).suffix[1:]
        variants = [("", {})]
        if kind == "jpg":  # the default reads this JPEG in bands; also once decoded whole
            variants = [(", bands", {}), (", decoded whole", {"reader_options": {"band_above_mb": 1 << 20}})]
        for label, changes in variants:
            spec = {**_base(args, [name]), "options": _pipeline_options(args, **changes)}
            rows.append(_row(f"peak RSS, {args.rss_size} px slide ({kind}{label})", run_child("pipeline", spec, args), {}, args))
    return rows


def rows_readers(args: argparse.Namespace, files: list[str], truth: dict) -> list[dict]:
    command = [sys.executable, str(ROOT / "benchmarks" / "readers.py"), *args.readers_args.split()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    print(result.stdout)
    return [{"row": "reader table (benchmarks/readers.py)", **({} if result.returncode == 0 else {"error": result.stderr[-300:]})}]


ROWS = {"naive": rows_naive_pipeline, "pipeline": rows_naive_pipeline, "model": rows_model, "sweep": rows_sweep,
        "timeline": rows_timeline, "sahi": rows_sahi, "rss": rows_rss, "readers": rows_readers}

# ---------------------------------------------------------------- output


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} cores"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _stages(row: dict) -> str:
    wall, cpu = row.get("stage_seconds"), row.get("stage_cpu_seconds")
    if not wall:
        return ""
    return ", ".join(f"{k} {wall[k]:.1f}/{cpu.get(k, 0):.1f}" for k in wall)


def markdown(rows: list[dict]) -> str:
    lines = ["| row | seconds | tiles | tiles/s | speed-up | recall | peak RSS MB | stage s wall/CPU |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['row']} | error: {r['error'][:100]} | | | | | | |")
            continue
        speed = r.get("speedup_vs_naive") or r.get("speedup_vs_first") or r.get("leanvision_speedup")
        ratio = r.get("ratio_to_model_engine_only")
        if ratio is not None:
            speed = f"{ratio:.2f} of model (engine), {r['ratio_to_model_with_pre_post']:.2f} (with pre/post)"
            if len(r.get("ratio_runs_engine_only", [])) > 1:
                speed += "; per run " + ", ".join(f"{x:.2f}" for x in r["ratio_runs_engine_only"])
        if "staged_tiles_per_s" in r:
            speed = f"with pre/post {r['staged_tiles_per_s']:.1f} tiles/s"
        lines.append(f"| {r['row']} | {_fmt(r.get('seconds'))} | {_fmt(r.get('tiles'))} | {_fmt(r.get('tiles_per_s'), 1)} | "
                     f"{_fmt(speed)} | {_fmt(r.get('recall'), 3)} | {_fmt(r.get('peak_rss_mb'), 0)} | {_stages(r)} |")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="naive,model", help=f"comma-separated, from {', '.join(ROWS)}")
    p.add_argument("--model", default=None, help="exported model dir for the pipeline rows (slim RetinaNet INT8 IR)")
    p.add_argument("--onnx-model", default=None, help="ONNX model dir for the SAHI comparison (default: --model)")
    p.add_argument("--backend", default=None, help="openvino or onnxruntime (default: by model file)")
    p.add_argument("--r50", default=None, help="timeline: R50 RetinaNet FP32 model dir")
    p.add_argument("--slim-fp32", default=None, help="timeline: slim MbV2 RetinaNet FP32 model dir")
    p.add_argument("--slides-dir", type=Path, default=None, help="COCO slides folder (images/ + annotations.json)")
    p.add_argument("--slides", type=int, default=2, help="synthetic slides to write")
    p.add_argument("--slide-size", type=int, default=12000, help="synthetic slide side, pixels")
    p.add_argument("--format", choices=("jpg", "tif", "both"), default="both", help="which slide files to run")
    p.add_argument("--window", type=int, default=1600, help="window width, level-0 pixels")
    p.add_argument("--overlap", type=int, default=0)
    p.add_argument("--drop-border", type=int, default=400)
    p.add_argument("--readers", type=int, default=None, help="pipeline readers (default: the pipeline's)")
    p.add_argument("--batch", type=int, default=None, help="pipeline batch (default: the pipeline's)")
    p.add_argument("--requests", type=int, default=None, help="pipeline requests (default: the engine's)")
    p.add_argument("--model-batches", type=_ints, default=[1, 4, 8])
    p.add_argument("--model-requests", type=_ints, default=[1, 2, 4])
    p.add_argument("--model-tiles", type=int, default=64, help="tiles held in memory for the model row")
    p.add_argument("--repeat", type=int, default=1, help="model rows: alternate model and pipeline runs N times, medians")
    p.add_argument("--sweep-readers", type=_ints, default=[1, 2, 3])
    p.add_argument("--sweep-batch", type=_ints, default=[1, 4])
    p.add_argument("--sweep-requests", type=_ints, default=[1, 2, 4])
    p.add_argument("--timeline-window", type=int, default=800, help="S0's early crop size")
    p.add_argument("--timeline-batch", type=int, default=8)
    p.add_argument("--timeline-requests", type=int, default=4)
    p.add_argument("--sahi-venv", type=Path, default=Path("/work/sahi-venv"))
    p.add_argument("--rss-size", type=int, default=40000)
    p.add_argument("--readers-args", default="", help="arguments for benchmarks/readers.py")
    p.add_argument("--score", type=float, default=0.3, help="recall counts detections scoring at least this")
    p.add_argument("--iou", type=float, default=0.5, help="recall's IoU threshold")
    p.add_argument("--work", type=Path, default=Path("/tmp/leanvision-bench-pipeline"))
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds per measurement")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(CHILDREN[spec.pop("kind")](spec)))
        return
    wanted = list(dict.fromkeys(r.strip() for r in args.rows.split(",") if r.strip()))
    unknown = [r for r in wanted if r not in ROWS]
    if unknown or (args.model is None and set(wanted) - {"readers"}):
        sys.exit(f"unknown rows {unknown}" if unknown else "--model is required")
    slides = prepare_slides(args)
    files, truth = slide_files(slides, args.format), ground_truth(slides)
    print(f"# leanvision pipeline benchmarks: {len(files)} file(s) from {slides}, {args.window} px windows")
    print(f"command: python benchmarks/pipeline.py {' '.join(sys.argv[1:])}")
    print(f"machine: {machine()}; date: {datetime.date.today().isoformat()}\n")
    rows: list[dict] = []
    for func in dict.fromkeys(ROWS[r] for r in wanted):  # naive and pipeline share one function
        rows += func(args, files, truth)
        print(markdown(rows[-1:]), file=sys.stderr, flush=True)
    print(markdown(rows))
    print("\n" + json.dumps(rows, indent=1, default=str))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
