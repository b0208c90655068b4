"""A tiny *trained* slim RetinaNet for the quantization tests, and a deliberately damaged copy.

Data: 128 px crops, at native scale, around the abnormal cells of 5 synthetic S0 tiles (10
crops, 8 boxes of 46-115 px, so the default anchors fit). Model: `retinanet_mbv2_slim` with
FPN and head towers 32 wide (110 convolution nodes, as the real slim model has), trained
from scratch with the overfit recipe of tests/training/test_overfit_retinanet.py: AdamW,
no augmentation, 50 steps of the whole set, precise BatchNorm. Measured here: mAP@0.5 1.0 on
the crops after ~25 s of training; the ONNX export takes ~20 s more.

The damage: one output channel of `backbone.body.1.conv.1` (MobileNetV2 block 1's linear
projection, read only by block 2's expansion conv) is scaled 1000x, weights and bias, and the
expansion conv's weights for that input channel are divided by 1000. The FP32 function is
unchanged (both are linear there: the projection has no activation, and the expansion's
ReLU6 comes after the product), but the expansion conv's input now spans a 1000x wider range
in one channel: per-tensor INT8 activation scales crush the other channels to zero.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from leanvision.core import CARD_FILENAME, Detections, Task
from leanvision.data.formats import (
    DetectionSet,
    Format,
    ImageRecord,
    read_detection,
    write_detection,
)
from leanvision.data.synth import synthesize

CROP = 128
DAMAGED_SOURCE = "backbone.body.1.conv.1/Conv"
DAMAGED_LAYER = "backbone.body.2.conv.0.0/Conv"
DAMAGE = 1000.0


def _crop_origin(rng: np.random.Generator, centre: tuple[float, float], limit: int) -> tuple[int, int]:
    jitter = rng.integers(-CROP // 5, CROP // 5 + 1, 2)
    x0, y0 = (int(np.clip(c - CROP / 2 + j, 0, limit - CROP)) for c, j in zip(centre, jitter, strict=True))
    return x0, y0


def write_crops(root: Path, *, tiles: int = 5, seed: int = 0) -> Path:
    """A COCO set of CROP px crops around each abnormal cell (two per negative tile)."""
    synthesize(Task.DETECT, root / "synth", seed=seed, images=tiles)
    source = read_detection(root / "synth" / "train")
    rng = np.random.default_rng(seed)
    out = root / "crops"
    records = []
    for record in source.images:
        image = cv2.imread(str(source.image_path(record)))
        boxes = record.targets.boxes
        centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes] or [(400.0, 400.0), (200.0, 600.0)]
        for j, centre in enumerate(centres):
            x0, y0 = _crop_origin(rng, centre, image.shape[1])
            shifted = boxes - np.array([x0, y0, x0, y0], np.float32)
            inside = (shifted[:, :2] >= -8).all(1) & (shifted[:, 2:] <= CROP + 8).all(1)
            kept = np.clip(shifted[inside], 0, CROP)
            name = f"{Path(record.file_name).stem}_{j}.png"
            (out / "images").mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(out / "images" / name), image[y0: y0 + CROP, x0: x0 + CROP])
            targets = Detections.from_boxes(kept, np.zeros(len(kept), np.int64))
            records.append(ImageRecord(name, CROP, CROP, targets, len(records) + 1))
    write_detection(DetectionSet(source.classes, records, out / "images"), out, Format.COCO, copy_images=False)
    return out


def train_tiny(data: Path, run: Path, *, steps: int = 50) -> Path:
    """Train the slim RetinaNet (widths 32) on `data`; returns the run directory."""
    from leanvision.training import TrainConfig, train
    from leanvision.training.config import (
        AmpMode,
        CheckpointOptions,
        DataOptions,
        EmaOptions,
        EvalOptions,
        LoaderOptions,
        ModelOptions,
        OptimizerKind,
        OptimizerOptions,
        ScheduleOptions,
    )

    images = len(read_detection(data).images)
    config = TrainConfig(
        data=DataOptions(train=data, val=data, input_size=(CROP, CROP)),
        model=ModelOptions(name="retinanet_mbv2_slim", overrides={"fpn_channels": 32, "head_channels": 32}),
        optimizer=OptimizerOptions(kind=OptimizerKind.ADAMW, lr=3e-3, clip_grad_norm=10.0),
        schedule=ScheduleOptions(epochs=steps, warmup_iters=10, final_lr=3e-5),
        ema=EmaOptions(enabled=False),
        eval=EvalOptions(period=0, precise_bn_batches=1),
        checkpoint=CheckpointOptions(period=steps),
        loader=LoaderOptions(batch_size=images, workers=0, threads=2),
        amp=AmpMode.OFF,  # fp32 on every CPU: "auto" is bf16 on AMX, which trained a different model
        output=run,
    )
    train(config, progress=False)
    return run


def to_ir(onnx_dir: Path, out: Path) -> Path:
    """The ONNX model directory converted to an OpenVINO IR directory (FP32 weights)."""
    import openvino as ov

    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_dir / "model.onnx")), str(out / "model.xml"), compress_to_fp16=False)
    shutil.copy(onnx_dir / CARD_FILENAME, out / CARD_FILENAME)
    return out


def damage(onnx_dir: Path, out: Path, *, channel: int = 0) -> Path:
    """A copy of `onnx_dir` with the damage of the module docstring (same FP32 function)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_dir / "model.onnx"))
    nodes = {node.name: node for node in model.graph.node}
    inits = {init.name: init for init in model.graph.initializer}

    def scale(name: str, index: tuple, factor: float) -> None:
        array = numpy_helper.to_array(inits[name]).copy()
        array[index] *= factor
        inits[name].CopyFrom(numpy_helper.from_array(array, name))

    source, layer = nodes[DAMAGED_SOURCE], nodes[DAMAGED_LAYER]
    scale(source.input[1], (channel,), DAMAGE)  # weights (out, in, k, k): output channel
    scale(source.input[2], (channel,), DAMAGE)  # bias
    scale(layer.input[1], (slice(None), channel), 1.0 / DAMAGE)  # the next conv's input channel
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / "model.onnx"))
    shutil.copy(onnx_dir / CARD_FILENAME, out / CARD_FILENAME)
    return out
