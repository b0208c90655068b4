"""The Ultralytics side of `benchmarks/peer_detect.py`; runs in the peer venv, never imports leanvision.

    PEER_VENV/bin/python benchmarks/_peer_yolo.py train|predict|export SPEC.json RESULT.json

SPEC.json holds the keyword arguments of the command; RESULT.json gets its figures. The
parent sets the environment (OMP_NUM_THREADS, YOLO_CONFIG_DIR, YOLO_OFFLINE=1,
YOLO_AUTOINSTALL=false) before this interpreter starts. Here:

- torch's thread count is forced to the spec's: Ultralytics' `select_device()` calls
  `torch.set_num_threads(ultralytics.utils.torch_utils.NUM_THREADS)`, which is
  `min(8, cpu_count - 1)`, i.e. 1 on a 2-core machine; the module global is patched before
  training and the count seen inside the training loop is recorded;
- every outgoing connection is refused and recorded, so nothing downloads silently
  (YOLO_OFFLINE already makes Ultralytics skip its online checks);
- training is timed with Ultralytics' own callbacks: step time from after a batch is
  fetched to after the optimizer step (what leanvision's `Trainer.step_seconds` covers), and
  loop time per epoch from its start to its last step (data loading included, validation not).
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

NETWORK_ATTEMPTS: list[str] = []


def _refuse_network() -> None:
    """Make any socket connection or DNS lookup fail (and record it)."""

    def refuse(*args: Any, **_kwargs: Any) -> Any:
        NETWORK_ATTEMPTS.append(repr(args[-1] if args else ""))
        raise OSError("peer_detect: network access is disabled in the peer run")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.getaddrinfo = refuse  # type: ignore[assignment]
    socket.create_connection = refuse  # type: ignore[assignment]


def _set_threads(threads: int) -> None:
    import torch
    import ultralytics.utils.torch_utils as torch_utils

    torch_utils.NUM_THREADS = threads  # what select_device() hands to torch.set_num_threads
    torch.set_num_threads(threads)


class _Timer:
    """Ultralytics callbacks: step and loop seconds, images seen, torch threads in the loop."""

    def __init__(self) -> None:
        self.step_seconds = self.loop_seconds = 0.0
        self.images = 0
        self.threads: list[int] = []
        self._epoch_start = self._batch_start = self._last_end = 0.0
        self._index = 0

    def attach(self, model: Any) -> None:
        for name in ("on_train_start", "on_train_epoch_start", "on_train_batch_start", "on_train_batch_end",
                     "on_train_epoch_end"):
            model.add_callback(name, getattr(self, name))

    def on_train_start(self, _trainer: Any) -> None:
        import torch

        self.threads.append(torch.get_num_threads())

    def on_train_epoch_start(self, _trainer: Any) -> None:
        self._epoch_start = self._last_end = time.perf_counter()
        self._index = 0

    def on_train_batch_start(self, _trainer: Any) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, trainer: Any) -> None:
        self._last_end = time.perf_counter()
        self.step_seconds += self._last_end - self._batch_start
        size, total = trainer.batch_size, len(trainer.train_loader.dataset)
        self.images += max(0, min(size, total - self._index * size))
        self._index += 1

    def on_train_epoch_end(self, _trainer: Any) -> None:
        import torch

        self.loop_seconds += self._last_end - self._epoch_start
        self.threads.append(torch.get_num_threads())


def train(spec: dict[str, Any]) -> dict[str, Any]:
    """YOLOv8n from scratch on spec['data'] (a data.yaml) for spec['minutes'] of wall time."""
    from ultralytics import YOLO

    _set_threads(spec["threads"])
    model = YOLO("yolov8n.yaml")
    timer = _Timer()
    timer.attach(model)
    start = time.perf_counter()
    model.train(data=spec["data"], time=spec["minutes"] / 60, epochs=spec.get("epochs", 100),
                imgsz=spec["imgsz"], batch=spec["batch"], workers=0, device="cpu", amp=False,
                plots=False, pretrained=False, seed=spec["seed"], project=spec["project"],
                name=spec["name"], exist_ok=False, verbose=True)
    seconds = time.perf_counter() - start
    save_dir = Path(model.trainer.save_dir)
    weights = save_dir / "weights"
    best = weights / "best.pt" if (weights / "best.pt").exists() else weights / "last.pt"
    with (save_dir / "results.csv").open() as handle:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(handle)]
    own = [float(r["metrics/mAP50(B)"]) for r in rows if r.get("metrics/mAP50(B)")]
    return {"train_seconds": seconds, "step_seconds": timer.step_seconds, "loop_seconds": timer.loop_seconds,
            "images": timer.images, "train_images": len(model.trainer.train_loader.dataset),
            "epochs_logged": len(rows), "own_val_map50_max": max(own, default=None), "threads_in_loop": sorted(set(timer.threads)),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "weights": str(best),
            "save_dir": str(save_dir)}


def predict(spec: dict[str, Any]) -> dict[str, Any]:
    """Boxes (xyxy, image pixels), scores and labels of spec['weights'] per path of spec['images']."""
    from ultralytics import YOLO

    _set_threads(spec["threads"])
    model = YOLO(spec["weights"], task="detect")
    out: dict[str, Any] = {}
    for path in spec["images"]:  # one at a time: a list source would be held in memory whole
        for result in model.predict(source=path, conf=spec.get("conf", 0.001), iou=spec.get("iou", 0.7),
                                    max_det=spec.get("max_det", 300), imgsz=spec["imgsz"], device="cpu",
                                    verbose=False):
            boxes = result.boxes
            out[path] = {"boxes": boxes.xyxy.tolist(), "scores": boxes.conf.tolist(),
                                    "labels": [int(c) for c in boxes.cls.tolist()]}
    return {"detections": out}


def export(spec: dict[str, Any]) -> dict[str, Any]:
    """`model.export(format="openvino", int8=True)`, calibrated on the data.yaml's train split."""
    from ultralytics import YOLO

    _set_threads(spec["threads"])
    start = time.perf_counter()
    path = YOLO(spec["weights"]).export(format="openvino", int8=True, data=spec["data"], imgsz=spec["imgsz"],
                                        batch=1, device="cpu", split="train")
    xml = next(Path(path).glob("*.xml"))
    return {"dir": str(path), "xml": str(xml), "seconds": time.perf_counter() - start}


def main() -> None:
    command, spec_path, result_path = sys.argv[1:4]
    _refuse_network()
    spec = json.loads(Path(spec_path).read_text())
    result = {"train": train, "predict": predict, "export": export}[command](spec)
    import torch
    import ultralytics

    result |= {"network_attempts": NETWORK_ATTEMPTS, "ultralytics": ultralytics.__version__,
               "torch": torch.__version__}
    Path(result_path).write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
