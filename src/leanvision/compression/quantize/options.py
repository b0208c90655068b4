"""`QuantizeOptions`: every knob of `quantize`, one frozen dataclass (YAML/JSON is its saved form).

The accuracy budget `max_drop` is in the unit of the task's metric (`validation.Metric`):
**points** of mAP@0.5 for detection (0.5 allows mAP@0.5 to fall from 0.9012 to 0.8962;
metrics themselves stay in 0-1 units, as `evaluation` returns them), and **objects per
image** of MAE for counting (0.5 allows MAE to rise from 3.2 to 3.7).
"""

from __future__ import annotations

import dataclasses
import enum

from leanvision.core.config import Config
from leanvision.runtime import EngineOptions, PerformanceHint


class CalibSelect(enum.StrEnum):
    """How calibration images are chosen from the calibration set."""

    RANDOM = "random"  # seeded uniform sample
    DIVERSE = "diverse"  # k-center greedy in backbone-feature space (Sener & Savarese 2018)
    SIMILAR = "similar"  # nearest the set's centroid in feature space (S3's hand pick, automated)


class Preset(enum.StrEnum):
    """NNCF quantization preset (OpenVINO backend)."""

    PERFORMANCE = "performance"  # symmetric weights and activations
    MIXED = "mixed"  # symmetric weights, asymmetric activations


class OrtMethod(enum.StrEnum):
    """ONNX Runtime calibration method (activation ranges)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class Fallback(enum.StrEnum):
    """Precision of the layers kept out of INT8."""

    FP32 = "fp32"
    BF16 = "bf16"  # OpenVINO INFERENCE_PRECISION_HINT=bf16; needs AVX-512 BF16 or AMX


# Throughput is measured with the same engine options for every model compared: the
# throughput hint (several requests in flight), as a deployment serving many tiles runs.
BENCH_ENGINE = EngineOptions(performance=PerformanceHint.THROUGHPUT)


@dataclasses.dataclass(frozen=True)
class CalibrationOptions(Config):
    """Which images calibrate the activation ranges.

    Attributes:
        size: calibration images (not batches); fewer available means all of them.
        select: how those images are chosen from the calibration set.
        sweep: also quantize with each of these calibration sizes and report the metric
            per size (S0: 300 images beat 1200); empty for no sweep.
        seed: seeds random calibration selection.
    """

    size: int = 300
    select: CalibSelect = CalibSelect.RANDOM
    sweep: tuple[int, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"calibration size must be at least 1, got {self.size}")
        if any(size < 1 for size in self.sweep):
            raise ValueError(f"calibration sweep sizes must be at least 1, got {list(self.sweep)}")


@dataclasses.dataclass(frozen=True)
class BudgetOptions(Config):
    """Which layers stay out of INT8: named ones, and the most sensitive under an accuracy budget.

    Attributes:
        max_drop: accuracy budget (points of mAP@0.5, or MAE objects per image, see the
            module docstring): keep the most sensitive layers out of INT8 until the
            measured drop is at most this; None quantizes every layer not named by `keep_fp32`.
        keep_fp32: regexes on layer names (`re.fullmatch`) or group names of the card's
            `layer_groups` ("backbone", "fpn", "head"): layers left out of INT8.
        fallback: precision of the layers kept out of INT8 (bf16 only where the CPU has it).
        sensitivity: rank layers by sensitivity (needed by `max_drop`; costs one inference
            of `sensitivity_images` images per layer).
        sensitivity_images: calibration images the per-layer output error is measured on.
        chart_layers: layers shown in the report's sensitivity chart (most sensitive first).
    """

    max_drop: float | None = None
    keep_fp32: tuple[str, ...] = ()
    fallback: Fallback = Fallback.FP32
    sensitivity: bool = True
    sensitivity_images: int = 8
    chart_layers: int = 30

    def __post_init__(self) -> None:
        if self.max_drop is not None and self.max_drop < 0:
            raise ValueError(f"max_drop is an allowed loss of accuracy and cannot be negative, got {self.max_drop}")
        if self.sensitivity_images < 1 or self.chart_layers < 1:
            raise ValueError("sensitivity_images and chart_layers must be at least 1")
        if self.max_drop is not None and not self.sensitivity:
            raise ValueError("the accuracy budget (max_drop) needs the sensitivity ranking")


@dataclasses.dataclass(frozen=True)
class SpeedOptions(Config):
    """The throughput measurement of FP32, all-INT8 and the saved model side by side.

    Attributes:
        seconds: seconds of inference per model per throughput round (0: no throughput
            measurement).
        rounds: throughput rounds; models are measured in turn in each round and the
            median is reported, so a busy machine slows every model alike.
    """

    seconds: float = 3.0
    rounds: int = 3

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"bench seconds cannot be negative, got {self.seconds}")
        if self.rounds < 1:
            raise ValueError(f"bench rounds must be at least 1, got {self.rounds}")


@dataclasses.dataclass(frozen=True)
class AdvancedOptions(Config):
    """The quantizer backends' own knobs (what `QuantizerBackend.quantize` receives).

    Attributes:
        preset: NNCF preset (OpenVINO backend); None: performance.
        ort_method: ONNX Runtime calibration method; None: minmax.
        per_channel: per-output-channel weight scales (both backends).
        reduce_range: ONNX Runtime 7-bit weights, which avoid the u8 x s8 saturation of
            AVX2 kernels without VNNI; None: on exactly when this CPU lacks VNNI.
    """

    preset: Preset | None = None
    ort_method: OrtMethod | None = None
    per_channel: bool = True
    reduce_range: bool | None = None

    @property
    def nncf_preset(self) -> Preset:
        return self.preset or Preset.PERFORMANCE

    @property
    def ort_calibration(self) -> OrtMethod:
        return self.ort_method or OrtMethod.MINMAX


@dataclasses.dataclass(frozen=True)
class QuantizeOptions(Config):
    """Options of `quantize` in four groups (the CLI flags of `leanvision quantize` fill them).

    Attributes:
        calibration: which images calibrate (`--calib-size`, `--calib-select`,
            `--calib-sweep`, `--seed`).
        budget: which layers stay out of INT8 (`--max-drop`, `--keep-fp32`, `--fallback`,
            `--sensitivity-images`).
        bench: the side-by-side throughput measurement (`--bench-seconds`).
        advanced: backend knobs (`--preset`, `--ort-method`, `--per-channel`).

    Saved as nested YAML/JSON (`budget: {max_drop: 0.5}`); `with_overrides` takes dotted
    keys (`budget.max_drop=0.5`).
    """

    calibration: CalibrationOptions = dataclasses.field(default_factory=CalibrationOptions)
    budget: BudgetOptions = dataclasses.field(default_factory=BudgetOptions)
    bench: SpeedOptions = dataclasses.field(default_factory=SpeedOptions)
    advanced: AdvancedOptions = dataclasses.field(default_factory=AdvancedOptions)
