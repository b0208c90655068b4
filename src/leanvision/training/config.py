"""The training recipe as data: one frozen dataclass per option group, YAML is only its saved form.

`TrainConfig.from_yaml(path)` reads a complete recipe (no `_base_` inheritance; every key is
documented in `configs/s0_cervical_retinanet.yaml` and `configs/s3_crowd_csrnet.yaml`).
Reading a recipe with overrides and checking its augmentation against the model's task is
`training.recipe.load_config`; this module imports nothing of the training world.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leanvision.core import Config, ResizeMode
from leanvision.core.enums import SamplerKind


class OptimizerKind(enum.StrEnum):
    SGD = "sgd"
    ADAMW = "adamw"


class AmpMode(enum.StrEnum):
    """bf16 autocast on CPU: AUTO decides from the CPU's ISA (see `training.hooks.amp`)."""

    AUTO = "auto"
    OFF = "off"
    BF16 = "bf16"

    @classmethod
    def _missing_(cls, value: object) -> AmpMode | None:
        # YAML 1.1 reads an unquoted `off` as False: `amp: off` means what it says.
        return cls.OFF if value is False else None


@dataclass(frozen=True)
class ModelOptions(Config):
    """Which architecture to build (`models.create_model`) and where its weights come from.

    Attributes:
        name: registry name, e.g. "retinanet_mbv2_slim".
        weights: a full-model state dict to start from (fine-tuning), local file.
        weights_backbone: a backbone state dict (e.g. torchvision's ImageNet MobileNetV2),
            local file, or a name: "imagenet" resolves offline to a package that ships the
            weights or to timm's / torchvision's cache (`models.pretrained`); nothing downloads.
        overrides: architecture keyword overrides passed to `create_model`.
        auto_anchors: anchor-based detectors: when the model's anchors reach fewer than 98 %
            of the training boxes (or 90 % of one class's) at the matcher's IoU, refit their
            sizes and ratios to the boxes (`data.anchors`, YOLOv5's AutoAnchor rule) and train
            with those; the run's config and checkpoints record the fitted anchors. Anchors
            given in `overrides` are kept as they are.
    """

    name: str = "retinanet_mbv2_slim"
    weights: Path | None = None
    weights_backbone: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    auto_anchors: bool = False


@dataclass(frozen=True)
class DataOptions(Config):
    """Datasets (any detection or counting format `data.formats` reads) and the model input size.

    Attributes:
        train, val: dataset directories; `val` may be None (no evaluation, no best.pt).
        input_size: (height, width) of the model input in pixels.
        resize: how images are fitted to the input for training and evaluation, and
            later deployment (the model card carries it): stretch, letterbox, or scale.
        scale: with resize "scale", model-input pixels per image pixel (S0: 0.5).
    """

    train: Path
    val: Path | None = None
    input_size: tuple[int, int] = (800, 800)
    resize: ResizeMode = ResizeMode.STRETCH
    scale: float | None = None

    def __post_init__(self) -> None:
        if min(self.input_size) < 32:
            raise ValueError(f"input_size must be at least 32 px a side, got {self.input_size}")
        if (self.resize is ResizeMode.SCALE) != (self.scale is not None):
            raise ValueError("data.scale is given exactly when data.resize is 'scale'")


@dataclass(frozen=True)
class OptimizerOptions(Config):
    """Optimizer. Weight decay is not applied to norm layers and biases.

    Attributes:
        clip_grad_norm: clip the global gradient L2 norm to this value; None disables.
    """

    kind: OptimizerKind = OptimizerKind.SGD
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    clip_grad_norm: float | None = 10.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclass(frozen=True)
class ScheduleOptions(Config):
    """Epochs and the per-iteration LR: linear warm-up, then cosine from `lr` to `final_lr`.

    Attributes:
        epochs: passes over the training set.
        warmup_iters: iterations of linear warm-up (capped at a third of the run).
        warmup_factor: LR multiplier at iteration 0 of the warm-up.
        final_lr: LR at the last iteration.
    """

    epochs: int = 100
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    final_lr: float = 1e-5

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")


@dataclass(frozen=True)
class AugmentOptions(Config):
    """Training augmentation: `data.augment.build_augmentation(steps, negatives=...)`.

    Attributes:
        steps: ordered steps, each `{"op": name, **parameters}` (names: `data.augment.OPS`
            for detection, `data.augment.counting.COUNT_OPS` for counting); empty for none.
        negatives: a folder of negative images (no boxes) for `replace_background`; None
            uses the training set's own negative images.
    """

    steps: tuple[dict[str, Any], ...] = ()
    negatives: Path | None = None


@dataclass(frozen=True)
class EmaOptions(Config):
    """Model EMA (YOLOv5's ModelEMA): decay * (1 - exp(-updates / warmup_steps)).

    Attributes:
        enabled: keep an EMA copy; evaluation and best.pt use it.
        decay: asymptotic decay per iteration.
        warmup_steps: time constant of the decay warm-up, in iterations.
    """

    enabled: bool = True
    decay: float = 0.9998
    warmup_steps: int = 2000

    def __post_init__(self) -> None:
        if not 0.0 < self.decay < 1.0:
            raise ValueError(f"ema decay must lie in (0, 1), got {self.decay}")


@dataclass(frozen=True)
class CheckpointOptions(Config):
    """Checkpoints: `last.pt` every `period` epochs and at the end, `best.pt` by the task's val
    metric (mAP@0.5 for detection, MAE for counting)."""

    period: int = 1


@dataclass(frozen=True)
class EvalOptions(Config):
    """Validation during training.

    Attributes:
        period: evaluate every `period` epochs (and after the last); 0 = only after the last.
        batch_size: images per `model.detect` / `model.predict` call.
        precise_bn_batches: before each evaluation, recompute the evaluated model's
            BatchNorm statistics over this many training batches; 0 = keep the running ones.
    """

    period: int = 1
    batch_size: int = 4
    precise_bn_batches: int = 0


@dataclass(frozen=True)
class LoaderOptions(Config):
    """Batches and parallelism.

    Attributes:
        batch_size: images per training step.
        workers: DataLoader worker processes (0 = load in the training process).
        threads: torch intra-op threads for the step; 0 keeps torch's default.
        sampler: how images are drawn each epoch: uniform (each once), class_balanced or
            sqrt (long-tailed classification; `data.torch_classify`).
    """

    batch_size: int = 8
    workers: int = 2
    threads: int = 0
    sampler: SamplerKind = SamplerKind.UNIFORM

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.workers < 0 or self.threads < 0:
            raise ValueError("batch_size must be >= 1, workers and threads >= 0")


@dataclass(frozen=True)
class TrainConfig(Config):
    """A complete training recipe.

    Attributes:
        output: run directory (last.pt, best.pt, metrics.csv/.jsonl, config.yaml).
        seed: seeds weights init, data order and augmentation (a function of seed, epoch
            and image index, so resuming replays the same batches).
        deterministic: ask torch for deterministic kernels where the CPU has them.
        amp: bf16 autocast mode.
        time_budget_minutes: stop (and fit the LR schedule to it) after this much wall time;
            None trains all epochs. The epoch count is planned from the first epoch's time, so
            runs on one machine usually agree, but a budget cannot make them reproducible.
        channels_last: train in NHWC memory format (faster on CPUs; `training.loop.Trainer`).
    """

    data: DataOptions
    model: ModelOptions = ModelOptions()
    optimizer: OptimizerOptions = OptimizerOptions()
    schedule: ScheduleOptions = ScheduleOptions()
    augment: AugmentOptions = AugmentOptions()
    ema: EmaOptions = EmaOptions()
    amp: AmpMode = AmpMode.AUTO
    checkpoint: CheckpointOptions = CheckpointOptions()
    eval: EvalOptions = EvalOptions()
    loader: LoaderOptions = LoaderOptions()
    seed: int = 0
    deterministic: bool = True
    output: Path = Path("runs/train")
    time_budget_minutes: float | None = None
    channels_last: bool = True

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
