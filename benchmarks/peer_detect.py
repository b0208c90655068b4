"""Peer benchmark: leanvision's detector training vs Ultralytics YOLOv8n from scratch, same CPU, same budget.

Every row trains for a wall-clock budget (`--minutes`, several values allowed), one process
after the other on the same machine and data, and is then scored by one scorer
(`leanvision.evaluation.detection.evaluate_detections`, COCO mAP@0.5 and mAP@[.5:.95]) on the
val split. Rows:

- `yolov8n`: Ultralytics YOLOv8n built from `yolov8n.yaml` (no pretrained weights), trained with
  `time=minutes/60` in its own venv (`--peer-venv`, created if missing), on the same images
  converted to YOLO txt labels. Ultralytics sets torch to 1 thread on a 2-core CPU
  (`select_device()` -> `torch.set_num_threads(min(8, cpu_count - 1))`): the run patches that to
  `--threads` and records the count seen inside its training loop. It forces DataLoader
  workers to 0 on CPU. Its `best.pt` predicts the val images (conf 0.001, IoU 0.7,
  max_det 300, at the trained imgsz) and the boxes are scored here.
- leanvision rows (`ROWS` below: a recipe plus overrides; `--row NAME=recipe:k=v,k=v` adds one):
  `train(load_config(recipe, overrides))` with `time_budget_minutes`, `loader.threads`,
  in a subprocess; `best.pt` scored with `evaluate_model` as `benchmarks/train_s0.py` does.

Ultralytics fits each image into `--imgsz` (an 800 px synthetic tile at 640: scale 0.8); the
S0 recipe trains on 800 px windows at scale 0.5 (400 px inputs). Mpx/s counts model-input
pixels, so the two are comparable as compute, not as slide area covered.

Per row and budget: training wall seconds, epochs (images seen / training images), training
images/s (step: after a batch is fetched to after the optimizer step; loop: the epoch's
wall time up to its last step, data loading included, validation excluded), Mpx/s of the
model input (images/s x input H x W), the peak memory of the training process tree (PSS
summed over the process and its DataLoader workers, and RSS summed, sampled every 0.5 s),
val mAP@0.5 and mAP, and, unless `--no-int8`, the deployed INT8 model: leanvision's
`best.pt` through `leanvision export --format onnx` and `leanvision quantize --backend
openvino`, Ultralytics' through `model.export(format="openvino", int8=True)` (calibrated on
the train split, like `--calib TRAIN`), both exported at `--int8-size` and timed with the same
OpenVINO code (`compression.quantize.speed.measure_throughput`: throughput hint,
INFERENCE_PRECISION_HINT f32 for the layers left in float, rounds interleaved, median), each
fed one val image through its own preprocessing. Neither graph holds NMS; Ultralytics' holds
its box decode, kept in float by its export (the Detect head's DFL and sigmoid are NNCF's
ignored scope), while `leanvision quantize` without flags makes every layer INT8.

    .venv/bin/python benchmarks/peer_detect.py --json peer.json      # the real table: 4 rows x 25 min (quiet machine)
    .venv/bin/python benchmarks/peer_detect.py --minutes 10 25 --seeds 0,1,2 --rows yolov8n,lv_best
    .venv/bin/python benchmarks/peer_detect.py --images 8 --minutes 1 --imgsz 160 --peer-batch 2 \\
        --int8-seconds 1 --int8-rounds 2 --rows yolov8n,lv_mbv2_scratch --out /tmp/peer_tiny \\
        data.input_size=[160,160] loader.batch_size=2                 # quick validation (~4 min, INT8 included)

Extra `key=value` arguments override every leanvision row. Prints the command, CPU, ISA,
date and a Markdown table; `--json PATH` also writes every figure. With several `--seeds`
the leanvision rows run once per seed (the peer with the first seed) and a second table gives
the mean and min-max of mAP@0.5.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).resolve().with_name("_peer_yolo.py")
PEER = "yolov8n"
# Leanvision rows: name -> (recipe, overrides). Edit freely; `--row NAME=recipe:k=v,k=v` adds one.
ROWS: dict[str, tuple[str, list[str]]] = {
    # S0's own model: MobileNetV2 slim RetinaNet from scratch, everything else the recipe's.
    "lv_mbv2_scratch": ("s0_cervical_retinanet",
                        ["model.name=retinanet_mbv2_slim", "model.weights_backbone=null", "model.overrides={}"]),
    "lv_effl0_imagenet": ("s0_cervical_retinanet",
                          ["model.name=retinanet_effl0_slim", "model.weights_backbone=imagenet",
                           "model.overrides={trainable_backbone_layers: 5}"]),
    # The S0 recipe before the measured trade (stride-8 stage trained, 4-conv head towers).
    "lv_effl0_heavy": ("s0_cervical_retinanet", ["model.overrides={trainable_backbone_layers: 5}"]),
    # The S0 recipe before its FPN went from 128 to 64 wide.
    "lv_fpn128": ("s0_cervical_retinanet", ["model.overrides={trainable_backbone_layers: 4, head_convs: 2}"]),
    # The S0 recipe as shipped (its defaults are the measured best).
    "lv_best": ("s0_cervical_retinanet", []),
    # The S0 recipe with windows that fit 640x480 photos (the scale warning's other advice):
    # 640 px windows at scale 0.5 into 320 px inputs, 25 % padding instead of 52 %.
    "lv_fit640": ("s0_cervical_retinanet",
                  ["data.input_size=[320,320]", "augment.steps=[{op: replace_background, p: 0.3, stain_norm: macenko, "
                   "max_tries: 20}, {op: random_shift, p: 0.3, max_tries: 20, inpaint_radius: 3}, "
                   "{op: online_crop_resize, crop: 640, size: 320, p_target: 1.0, min_visibility: 0.5, fill: 0}, "
                   "{op: random_flip, horizontal: 0.5, vertical: 0.5}]"]),
    # The S0 recipe as its scale warning advises for small photos (`--scene blood`: 640x480,
    # platelets 16-28 px): scale 1, 400 px windows cut at 400 px, no rescale.
    "lv_scale1": ("s0_cervical_retinanet",
                  ["data.scale=1", "augment.steps=[{op: random_shift, p: 0.3, max_tries: 20, inpaint_radius: 3}, "
                   "{op: online_crop_resize, crop: 400, size: 400, p_target: 1.0, min_visibility: 0.5, fill: 0}, "
                   "{op: random_flip, horizontal: 0.5, vertical: 0.5}]"]),
}
PEER_PACKAGES = ["torch==2.14.1", "torchvision==0.29.1", "ultralytics"]


@dataclasses.dataclass(frozen=True)
class Case:
    """One training run: a row at one budget and seed."""

    row: str
    minutes: float
    seed: int
    recipe: str | None = None  # None for the peer
    overrides: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.row}_{self.minutes:g}min_s{self.seed}"


@dataclasses.dataclass
class Context:
    """What every case shares."""

    args: argparse.Namespace
    data: Path
    out: Path
    yolo_yaml: Path | None = None
    peer_python: Path | None = None
    peer_env: dict[str, str] = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------- machine


def _cpuinfo() -> tuple[str, set[str]]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name, flags = "unknown", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name == "unknown":
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return name, flags


def _machine() -> dict[str, Any]:
    import torch

    name, flags = _cpuinfo()
    isa = {"AVX2": "avx2" in flags, "AVX512F": "avx512f" in flags, "AVX512_VNNI": "avx512_vnni" in flags,
           "AVX_VNNI": "avx_vnni" in flags, "AMX": bool({"amx_int8", "amx_tile"} & flags)}
    versions = {"torch": torch.__version__}
    for package in ("openvino", "nncf"):
        versions[package] = _version(package)
    return {"cpu": name, "cores": os.cpu_count(), "isa": isa, "versions": versions,
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------- data


def _ensure_data(path: Path, images: int, seed: int, scene: str) -> Path:
    from leanvision.core import Task
    from leanvision.data.synth import synthesize

    if not (path / "train").is_dir():
        synthesize(Task.DETECT, path, seed=seed, images=images, scene=scene)
    made = json.loads((path / "synth.json").read_text())["splits"]["train"]["images"]
    if made != images:
        raise SystemExit(f"{path} holds {made} synthetic training images, not --images {images}: give a new --out")
    return path


def _yolo_layout(data: Path, out: Path) -> Path:
    """The COCO train/val set as Ultralytics reads it: {split}/images + {split}/labels, one data.yaml."""
    from leanvision.data.formats import Format, convert_detection

    yaml = out / "data.yaml"
    if yaml.exists():
        return yaml
    classes: tuple[str, ...] = ()
    for split in ("train", "val"):
        dataset = convert_detection(data / split, out / split, Format.YOLO).written  # hard links the images
        classes = classes or dataset.classes
        if dataset.classes != classes:
            raise SystemExit(f"train and val classes differ: {classes} vs {dataset.classes}")
    spec = {"path": str(out), "train": "train/images", "val": "val/images", "names": list(classes)}
    yaml.write_text(json.dumps(spec, indent=1) + "\n")  # JSON is YAML
    return yaml


# ---------------------------------------------------------------- peer venv


def _pip_install(python: Path, packages: list[str]) -> None:
    print(f"peer venv: pip install {' '.join(packages)}", file=sys.stderr)
    subprocess.run([str(python), "-m", "pip", "install", "--no-compile", "-q", *packages], check=True)


def _has_module(python: Path, module: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([str(python), "-c", probe], check=False).returncode == 0


def _ensure_peer_venv(venv: Path, int8: bool) -> Path:
    """The peer venv's python; created with torch + ultralytics if missing, OpenVINO + NNCF
    added (the versions of this venv) when INT8 is wanted, since Ultralytics may not
    auto-install them offline."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
        _pip_install(python, PEER_PACKAGES)
    if int8 and not (_has_module(python, "openvino") and _has_module(python, "nncf")):
        _pip_install(python, [p if v is None else f"{p}=={v}" for p, v in
                              (("openvino", _version("openvino")), ("nncf", _version("nncf")))])
    return python


def _font(venv: Path) -> Path:
    """A TrueType font to stand for the Arial.ttf Ultralytics would otherwise download."""
    candidates = [*venv.glob("lib/python*/site-packages/matplotlib/mpl-data/fonts/ttf/DejaVuSans.ttf")]
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    except ImportError:
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise SystemExit("no DejaVuSans.ttf found (matplotlib) to stand for Ultralytics' Arial.ttf")


def _peer_env(venv: Path, config_dir: Path, threads: int) -> dict[str, str]:
    target = config_dir / "Ultralytics"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (target / name).exists():
            shutil.copy(_font(venv), target / name)
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "YOLO_CONFIG_DIR": str(config_dir),
            "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "MPLCONFIGDIR": str(config_dir / "mpl")}


# ---------------------------------------------------------------- processes and memory


class TreeMemory:
    """Peak PSS and RSS summed over a process and all its descendants, sampled every `interval` s."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_pss_mb = self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        from leanvision.largeimage.pipeline.stats import pss_mb

        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        pss = rss = 0.0
        for process in processes:
            try:
                resident = process.memory_info().rss / 2**20
            except psutil.Error:
                continue
            rss += resident
            pss += pss_mb(process.pid) or resident
        self.peak_pss_mb, self.peak_rss_mb = max(self.peak_pss_mb, pss), max(self.peak_rss_mb, rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)


def _run_child(command: list[str], env: dict[str, str], log: Path, result: Path) -> tuple[dict[str, Any], float, TreeMemory]:
    """Run `command` (output to `log`), sampling its memory; its JSON result, wall seconds, memory."""
    start = time.perf_counter()
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        with TreeMemory(process.pid) as memory:
            code = process.wait()
    seconds = time.perf_counter() - start
    if code != 0 or not result.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"{' '.join(command[:3])} ... exited {code} (log {log}):\n{tail}")
    return json.loads(result.read_text()), seconds, memory


def _peer_call(ctx: Context, command: str, spec: dict[str, Any], folder: Path, tag: str) -> tuple[dict[str, Any], float, TreeMemory]:
    folder.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = folder / f"{tag}_spec.json", folder / f"{tag}_result.json"
    spec_path.write_text(json.dumps(spec) + "\n")
    result_path.unlink(missing_ok=True)
    argv = [str(ctx.peer_python), str(HELPER), command, str(spec_path), str(result_path)]
    return _run_child(argv, ctx.peer_env, folder / f"{tag}.log", result_path)


# ---------------------------------------------------------------- leanvision child (runs in its own process)


def _step_timer() -> Any:
    """A hook timing the steps and epoch loops of leanvision's Trainer like the peer's callbacks."""
    import torch

    from leanvision.training import HookBase

    class StepTimer(HookBase):
        def __init__(self) -> None:
            self.step_seconds = self.loop_seconds = 0.0
            self.images, self.index, self.start, self.last, self.total = 0, 0, 0.0, 0.0, 0
            self.threads: set[int] = set()

        def before_train(self) -> None:
            self.total = len(self.trainer.loader.dataset)

        def before_epoch(self) -> None:
            self.start = self.last = time.perf_counter()
            self.index = 0

        def after_step(self) -> None:
            self.last = time.perf_counter()
            self.step_seconds += self.trainer.step_seconds
            size = self.trainer.loader.batch_size
            self.images += max(0, min(size, self.total - self.index * size))
            self.index += 1
            self.threads.add(torch.get_num_threads())

        def after_epoch(self) -> None:
            self.loop_seconds += self.last - self.start

    return StepTimer()


def lv_child(spec_path: Path) -> None:
    """Train one leanvision case (the `--lv-case` entry point); writes the result JSON."""
    from leanvision.core.resources import keep_freed_memory
    from leanvision.training import load_config, train
    from leanvision.training.hooks.metrics_log import read_rows

    keep_freed_memory()  # as `leanvision train` does
    spec = json.loads(spec_path.read_text())
    config = load_config(spec["recipe"], spec["overrides"])
    timer = _step_timer()
    start = time.perf_counter()
    result = train(config, extra_hooks=[timer], progress=False)
    seconds = time.perf_counter() - start
    logged_rows = read_rows(result.run_dir)
    logged = [r["train_images_per_s"] for r in logged_rows if "train_images_per_s" in r]
    own = [r["val_map50"] for r in logged_rows if r.get("val_map50") is not None]
    best = result.run_dir / "best.pt"
    out = {"train_seconds": seconds, "epochs_completed": result.epochs, "best_epoch": result.best_epoch,
           "step_seconds": timer.step_seconds, "loop_seconds": timer.loop_seconds, "images": timer.images,
           "train_images": timer.total, "threads_in_loop": sorted(timer.threads),
           "logged_images_per_s_mean": statistics.fmean(logged) if logged else None,
           "own_val_map50_max": max(own, default=None),
           "input_hw": list(config.data.input_size), "model": config.model.name,
           "weights": str(best if best.exists() else result.run_dir / "last.pt")}
    Path(spec["result"]).write_text(json.dumps(out) + "\n")


# ---------------------------------------------------------------- training rows


def _rates(row: dict[str, Any], pixels: int) -> None:
    """Images/s and Mpx/s from the timers' figures, in place."""
    images = row["images"]
    row["epochs"] = round(images / max(1, row["train_images"]), 2)
    row["step_images_per_s"] = round(images / row["step_seconds"], 3) if row["step_seconds"] else None
    row["loop_images_per_s"] = round(images / row["loop_seconds"], 3) if row["loop_seconds"] else None
    row["input_pixels"] = pixels
    for kind in ("step", "loop"):
        rate = row[f"{kind}_images_per_s"]
        row[f"{kind}_mpx_per_s"] = None if rate is None else round(rate * pixels / 1e6, 3)


def _memory(row: dict[str, Any], memory: TreeMemory) -> None:
    row["peak_pss_mb"], row["peak_rss_mb"] = round(memory.peak_pss_mb, 1), round(memory.peak_rss_mb, 1)


def _run_lv(case: Case, ctx: Context) -> dict[str, Any]:
    folder = ctx.out / case.name
    folder.mkdir(parents=True)
    args = ctx.args
    overrides = [f"data.train={ctx.data / 'train'}", f"data.val={ctx.data / 'val'}", f"output={folder / 'run'}",
                 f"time_budget_minutes={case.minutes}", f"loader.threads={args.threads}", f"seed={case.seed}",
                 *case.overrides, *args.overrides]
    spec = {"recipe": case.recipe, "overrides": overrides, "threads": args.threads, "result": str(folder / "result.json")}
    (folder / "spec.json").write_text(json.dumps(spec, indent=1) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, str(Path(__file__).resolve()), "--lv-case", str(folder / "spec.json")]
    row, wall, memory = _run_child(command, env, folder / "train.log", folder / "result.json")
    row |= {"process_seconds": round(wall, 1), "overrides": list(case.overrides) + list(args.overrides)}
    _rates(row, row["input_hw"][0] * row["input_hw"][1])
    _memory(row, memory)
    row |= _score_checkpoint(Path(row["weights"]), ctx.data / "val", args.threads)
    return row


def _score_checkpoint(checkpoint: Path, val: Path, threads: int) -> dict[str, float]:
    import torch

    from leanvision.data.formats import read_detection
    from leanvision.training.checkpoint import model_from_checkpoint
    from leanvision.training.predict import evaluate_model

    torch.set_num_threads(threads)
    model, card = model_from_checkpoint(checkpoint)
    metrics, _ = evaluate_model(model, read_detection(val), card.input, class_names=card.class_names)
    return _scores(metrics)


def _scores(metrics: Any) -> dict[str, Any]:
    """mAP@0.5 and mAP, and each class's AP@0.5 and AP (a collapsed class shows here)."""
    return {"map50": round(metrics.map50, 4), "map": round(metrics.map, 4),
            "ap50_per_class": {k: round(v, 4) for k, v in metrics.ap50_per_class.items()},
            "ap_per_class": {k: round(v, 4) for k, v in metrics.ap_per_class.items()}}


def _run_peer(case: Case, ctx: Context) -> dict[str, Any]:
    folder = ctx.out / case.name
    args = ctx.args
    spec = {"data": str(ctx.yolo_yaml), "minutes": case.minutes, "imgsz": args.imgsz, "batch": args.peer_batch,
            "seed": case.seed, "threads": args.threads, "project": str(folder), "name": "train"}
    row, wall, memory = _peer_call(ctx, "train", spec, folder, "train")
    row |= {"process_seconds": round(wall, 1), "input_hw": [args.imgsz, args.imgsz], "model": "yolov8n.yaml",
            "batch": args.peer_batch}
    _rates(row, args.imgsz * args.imgsz)
    _memory(row, memory)
    row |= _score_peer(ctx, row["weights"], args.imgsz, folder, "predict")
    return row


def _score_peer(ctx: Context, weights: str, imgsz: int, folder: Path, tag: str) -> dict[str, float]:
    """Ultralytics predicts the val images in its venv; the boxes are scored here."""
    from leanvision.core import Detections
    from leanvision.data.formats import read_detection
    from leanvision.evaluation.detection import evaluate_detections

    val = read_detection(ctx.data / "val")
    paths = [str(val.image_path(r)) for r in val.images]
    spec = {"weights": weights, "images": paths, "imgsz": imgsz, "threads": ctx.args.threads}
    found = _peer_call(ctx, "predict", spec, folder, tag)[0]["detections"]
    predictions = [Detections(**found[p]) for p in paths]
    metrics = evaluate_detections([r.targets for r in val.images], predictions,
                                  image_sizes=[(r.width, r.height) for r in val.images], class_names=val.classes)
    return _scores(metrics)


# ---------------------------------------------------------------- INT8


def _int8_lv(row: dict[str, Any], case: Case, ctx: Context) -> None:
    folder, size = ctx.out / case.name, ctx.args.int8_size
    cli = Path(sys.executable).with_name("leanvision")
    onnx_dir, int8_dir, report = folder / "onnx", folder / "int8", folder / "quant.json"
    steps = [[str(cli), "export", row["weights"], "--format", "onnx", "--out", str(onnx_dir),
              "--input-size", str(size)],
             [str(cli), "quantize", str(onnx_dir), "--calib", str(ctx.data / "train"), "--val",
              str(ctx.data / "val"), "--backend", "openvino", "--out", str(int8_dir), "--bench-seconds", "0",
              "--json", str(report)]]
    start = time.perf_counter()
    for step in steps:
        with (folder / "int8.log").open("a") as sink:
            if subprocess.run(step, stdout=sink, stderr=subprocess.STDOUT, check=False).returncode != 0:
                raise RuntimeError(f"{' '.join(step[:2])} failed, see {folder / 'int8.log'}")
    models = {m["label"]: m for m in json.loads(report.read_text())["models"]}
    row["int8_seconds"] = round(time.perf_counter() - start, 1)
    row["int8_xml"], row["int8_kind"] = str(int8_dir / "model.xml"), "lv"
    row["int8_map50"] = round(models["saved"]["map50"], 4)  # leanvision quantize: through the deployed predictor
    row["fp32_export_map50"] = round(models["FP32"]["map50"], 4)


def _int8_peer(row: dict[str, Any], case: Case, ctx: Context) -> None:
    folder, size = ctx.out / case.name, ctx.args.int8_size
    spec = {"weights": row["weights"], "data": str(ctx.yolo_yaml), "imgsz": size, "threads": ctx.args.threads}
    exported = _peer_call(ctx, "export", spec, folder, "export")[0]
    row["int8_seconds"] = round(exported["seconds"], 1)
    row["int8_xml"], row["int8_kind"] = exported["xml"], "yolo"
    row["int8_map50"] = _score_peer(ctx, exported["dir"], size, folder, "predict_int8")["map50"]


def _yolo_batch(rgb: Any, size: int) -> Any:
    """Ultralytics' preprocessing: letterbox (grey 114, centred), RGB, /255, NCHW float32."""
    import cv2
    import numpy as np

    h, w = rgb.shape[:2]
    r = min(size / h, size / w)
    nh, nw = round(h * r), round(w * r)
    canvas = np.full((size, size, 3), 114, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top:top + nh, left:left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], np.float32) / 255.0


def _speed_batch(row: dict[str, Any], rgb: Any, size: int) -> Any:
    if row["int8_kind"] == "yolo":
        return _yolo_batch(rgb, size)
    from leanvision.runtime import load_predictor

    with load_predictor(Path(row["int8_xml"]).parent, backend="openvino") as predictor:
        return predictor.preprocess([rgb]).batch


def _int8_speed(rows: list[dict[str, Any]], ctx: Context) -> None:
    """INT8 images/s of every row's model on one val image, each through its own preprocessing,
    models measured in turn within each round (the median round is kept)."""
    from leanvision.compression.quantize.options import BENCH_ENGINE
    from leanvision.compression.quantize.speed import SpeedCase, measure_throughput
    from leanvision.data.augment.common import read_rgb
    from leanvision.data.formats import read_detection
    from leanvision.runtime import Backend, PrecisionHint

    timed = [r for r in rows if r.get("int8_xml")]
    if not timed:
        return
    val = read_detection(ctx.data / "val")
    rgb = read_rgb(val.image_path(val.images[0]))
    batches = [_speed_batch(r, rgb, ctx.args.int8_size) for r in timed]
    rounds: list[list[float]] = [[] for _ in timed]
    for _ in range(ctx.args.int8_rounds):
        for index, (row, batch) in enumerate(zip(timed, batches, strict=True)):
            case = SpeedCase(row["case"], Path(row["int8_xml"]), Backend.OPENVINO, PrecisionHint.FP32)
            result = measure_throughput([case], batch, seconds=ctx.args.int8_seconds, rounds=1, options=BENCH_ENGINE)
            rounds[index].append(result[0].images_per_s)
            row["int8_precision_hint"], row["int8_requests"] = result[0].precision, result[0].requests
    for row, values in zip(timed, rounds, strict=True):
        row["int8_images_per_s_rounds"] = values
        row["int8_images_per_s"] = round(statistics.median(values), 2)
        row["int8_mpx_per_s"] = round(row["int8_images_per_s"] * ctx.args.int8_size ** 2 / 1e6, 3)


# ---------------------------------------------------------------- cases and output


def _split_overrides(text: str) -> list[str]:
    """'a=1,b.c=[2,3]' -> ['a=1', 'b.c=[2,3]']: commas start a new item only before `key=`."""
    return [item for item in re.split(r",(?=[\w.]+=)", text) if item] if text else []


def _rows(args: argparse.Namespace) -> dict[str, tuple[str, list[str]]]:
    rows = dict(ROWS)
    for text in args.row:
        name, _, rest = text.partition("=")
        recipe, _, overrides = rest.partition(":")
        if not name or not recipe:
            raise SystemExit(f"--row wants NAME=recipe:k=v,k=v, got {text!r}")
        rows[name] = (recipe, _split_overrides(overrides))
    return rows


def _cases(args: argparse.Namespace) -> list[Case]:
    table = _rows(args)
    selected = [r for r in args.rows.split(",") if r] + [t.partition("=")[0] for t in args.row]
    unknown = [r for r in selected if r != PEER and r not in table]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {PEER}, {', '.join(table)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    cases = []
    for minutes in args.minutes:
        for row in dict.fromkeys(selected):
            if row == PEER:
                cases.append(Case(row, minutes, seeds[0]))
            else:
                cases += [Case(row, minutes, seed, table[row][0], tuple(table[row][1])) for seed in seeds]
    return cases


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(rows: list[dict[str, Any]], int8_size: int) -> str:
    head = ("| row | min | seed | epochs | train s | img/s step | img/s loop | input | Mpx/s loop | peak PSS MB "
            f"| mAP@0.5 | mAP | INT8 mAP@0.5 | INT8 img/s @{int8_size} |")
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        if "error" in r:
            last = r["error"].strip().splitlines()[-1][:100].replace("|", "/")
            lines.append(f"| {r['row']} | {r['minutes']:g} | {r['seed']} | failed: {last} |" + " |" * 10)
            continue
        hw = "x".join(str(v) for v in r["input_hw"])
        lines.append(f"| {r['row']} | {r['minutes']:g} | {r['seed']} | {_fmt(r['epochs'], 2)} | "
                     f"{_fmt(r['train_seconds'], 0)} | {_fmt(r['step_images_per_s'], 2)} | "
                     f"{_fmt(r['loop_images_per_s'], 2)} | {hw} | {_fmt(r['loop_mpx_per_s'], 2)} | "
                     f"{_fmt(r['peak_pss_mb'], 0)} | {_fmt(r['map50'], 4)} | {_fmt(r['map'], 4)} | "
                     f"{_fmt(r.get('int8_map50'), 4)} | {_fmt(r.get('int8_images_per_s'), 1)} |")
    return "\n".join(lines)


def _class_table(rows: list[dict[str, Any]]) -> str | None:
    """AP@0.5 / AP per class and row, when the set has more than one class."""
    scored = [r for r in rows if len(r.get("ap50_per_class", {})) > 1]
    if not scored:
        return None
    names = list(scored[0]["ap50_per_class"])
    lines = ["| row | min | seed | " + " | ".join(f"{n} AP@0.5 / AP" for n in names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for r in scored:
        cells = " | ".join(f"{r['ap50_per_class'][n]:.4f} / {r['ap_per_class'][n]:.4f}" for n in names)
        lines.append(f"| {r['row']} | {r['minutes']:g} | {r['seed']} | {cells} |")
    return "\n".join(lines)


def _seed_table(rows: list[dict[str, Any]]) -> str | None:
    groups: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        if "error" not in r:
            groups.setdefault((r["row"], r["minutes"]), []).append(r["map50"])
    if all(len(v) < 2 for v in groups.values()):
        return None
    lines = ["| row | min | seeds | mAP@0.5 mean | min-max |", "|---|---|---|---|---|"]
    for (row, minutes), values in groups.items():
        lines.append(f"| {row} | {minutes:g} | {len(values)} | {statistics.fmean(values):.4f} | "
                     f"{min(values):.4f}-{max(values):.4f} |")
    return "\n".join(lines)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every leanvision row")
    parser.add_argument("--minutes", type=float, nargs="+", default=[25.0], help="wall-clock budgets per row")
    parser.add_argument("--rows", default=",".join([PEER, *ROWS]), help="comma list of rows")
    parser.add_argument("--row", action="append", default=[], metavar="NAME=recipe:k=v,k=v",
                        help="an ad hoc leanvision row (repeatable); it is run too")
    parser.add_argument("--seeds", default="0", help="comma list; leanvision rows run once per seed")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every row")
    parser.add_argument("--data", type=Path, default=None, help="detect set with train/ and val/ (default: synthesize)")
    parser.add_argument("--images", type=int, default=120, help="synthetic training images (val gets a quarter)")
    parser.add_argument("--scene", default="cytology", choices=["cytology", "blood"],
                        help="synthetic set: S0's one-class tiles or 3-class blood smears (640x480)")
    parser.add_argument("--imgsz", type=int, default=640, help="peer training and val input side")
    parser.add_argument("--peer-batch", type=int, default=16, help="peer batch size (Ultralytics' default 16)")
    parser.add_argument("--peer-venv", type=Path, default=Path.home() / ".cache" / "leanvision" / "peer-venv")
    parser.add_argument("--no-int8", action="store_true", help="skip the INT8 export and throughput")
    parser.add_argument("--int8-size", type=int, default=None, help="INT8 export input side (default --imgsz)")
    parser.add_argument("--int8-seconds", type=float, default=5.0, help="throughput seconds per model per round")
    parser.add_argument("--int8-rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_peer", help="work folder")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--lv-case", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.int8_size = args.int8_size or args.imgsz
    return args


def _context(args: argparse.Namespace, cases: list[Case]) -> Context:
    taken = [c.name for c in cases if (args.out / c.name).exists()]
    if taken:
        raise SystemExit(f"{args.out} already holds {', '.join(taken)}: give a new --out")
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.data or _ensure_data(args.out / "data", args.images, 0, args.scene)
    ctx = Context(args, data.resolve(), args.out.resolve())
    if any(c.row == PEER for c in cases):
        ctx.yolo_yaml = _yolo_layout(ctx.data, ctx.out / "data_yolo")
        ctx.peer_python = _ensure_peer_venv(args.peer_venv.expanduser(), not args.no_int8)
        ctx.peer_env = _peer_env(args.peer_venv.expanduser(), ctx.out / "yolo_config", args.threads)
    return ctx


def _run_case(case: Case, ctx: Context) -> dict[str, Any]:
    print(f"[{datetime.datetime.now():%H:%M:%S}] {case.name}: training {case.minutes:g} min", file=sys.stderr)
    base = {"case": case.name, "row": case.row, "minutes": case.minutes, "seed": case.seed, "recipe": case.recipe}
    try:
        row = base | (_run_peer(case, ctx) if case.row == PEER else _run_lv(case, ctx))
    except Exception as exc:  # a failed row is a finding; the others still run
        return base | {"error": f"{type(exc).__name__}: {exc}"}
    if not ctx.args.no_int8:
        try:
            (_int8_peer if case.row == PEER else _int8_lv)(row, case, ctx)
        except Exception as exc:
            row["int8_error"] = f"{type(exc).__name__}: {exc}"
    print(f"  {case.name}: mAP@0.5 {row['map50']:.4f}, {row['epochs']} epochs", file=sys.stderr)
    return row


def main() -> None:
    args = _args()
    if args.lv_case is not None:
        lv_child(args.lv_case)
        return
    cases = _cases(args)
    ctx = _context(args, cases)
    rows = [_run_case(case, ctx) for case in cases]
    if not args.no_int8:
        _int8_speed(rows, ctx)
    machine = _machine()
    isa = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in machine["isa"].items())
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {args.threads} torch threads per row; ISA: {isa}")
    print(f"date: {machine['date']}; versions: {machine['versions']}")
    print(_table(rows, args.int8_size))
    for r in rows:
        for key in ("error", "int8_error"):
            if key in r:
                print(f"{r['case']} {key}: {r[key]}")
    per_class = _class_table(rows)
    if per_class:
        print("\nPer class:\n" + per_class)
    seeds = _seed_table(rows)
    if seeds:
        print("\nmAP@0.5 over seeds:\n" + seeds)
    if args.json is not None:
        payload = {"command": sys.argv, "machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
                   "rows": rows}
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
