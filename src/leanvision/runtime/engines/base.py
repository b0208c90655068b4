"""The engine interface every backend implements, and the options they share.

An engine runs one model file on the CPU. It is the only stateful piece of the runtime:
predictors wrap an engine and stay pure. Two ways to run a batch:

    outputs = engine.infer(batch)              # sync: {output name: array}
    engine.submit(batch, on_done)              # async: on_done(outputs) from an engine thread
    engine.wait_all()                          # block until every on_done has run

`submit` blocks while `num_requests` batches are already in flight (back-pressure), so a
producer can never queue more work than the engine holds. An exception raised by
inference or by an `on_done` callback is re-raised by the next `wait_all`.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from leanvision.core.config import Config, as_enum
from leanvision.core.enums import Precision
from leanvision.core.errors import ModelError

Outputs = dict[str, np.ndarray]
OnDone = Callable[[Outputs], None]


class Backend(enum.StrEnum):
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class PrecisionHint(enum.StrEnum):
    """Floating-point precision requested for the engine's compute.

    AUTO keeps the engine's own default: on OpenVINO's CPU plugin that is bf16 on
    bf16-capable CPUs (AVX-512 BF16 / AMX) and f32 elsewhere.
    """

    FP32 = "fp32"
    BF16 = "bf16"
    AUTO = "auto"


class PerformanceHint(enum.StrEnum):
    LATENCY = "latency"  # one request at a time, all cores on it
    THROUGHPUT = "throughput"  # several streams / requests in parallel


@dataclasses.dataclass(frozen=True)
class EngineOptions(Config):
    """Options every engine understands (None: the engine's own default).

    Attributes:
        threads: CPU threads for inference.
        streams: parallel execution streams (OpenVINO); ONNX Runtime runs one.
        num_requests: batches that may be in flight at once through `submit`. OpenVINO
            default: the compiled model's OPTIMAL_NUMBER_OF_INFER_REQUESTS; ONNX Runtime: 1.
        precision: floating-point compute precision requested.
        performance: latency or throughput tuning.
    """

    threads: int | None = None
    streams: int | None = None
    num_requests: int | None = None
    precision: PrecisionHint = PrecisionHint.FP32
    performance: PerformanceHint = PerformanceHint.LATENCY

    def __post_init__(self) -> None:
        for name in ("threads", "streams", "num_requests"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")


class Engine(abc.ABC):
    """One compiled model on one backend.

    Attributes:
        path: the model file.
        precision: the floating-point precision the engine actually computes in (FP32 or
            BF16). INT8 models report the precision of their non-quantized layers.
    """

    backend: Backend
    path: Path
    precision: Precision

    @property
    @abc.abstractmethod
    def input_name(self) -> str: ...

    @property
    @abc.abstractmethod
    def input_shape(self) -> tuple[int | None, ...]:
        """The model input's shape; None for a dynamic dimension, e.g. (None, 3, 800, 800)."""

    @property
    @abc.abstractmethod
    def output_names(self) -> tuple[str, ...]: ...

    @property
    @abc.abstractmethod
    def num_requests(self) -> int:
        """How many batches `submit` keeps in flight before it blocks."""

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> Outputs:
        """Run `batch` (N, C, H, W) and return {output name: array}, arrays owned by the caller."""

    @abc.abstractmethod
    def submit(self, batch: np.ndarray, on_done: OnDone) -> None:
        """Start inference of `batch`; `on_done(outputs)` runs later on an engine thread.

        Blocks while `num_requests` batches are in flight. The caller must not modify
        `batch` until its `on_done` has run.
        """

    @abc.abstractmethod
    def wait_all(self) -> None:
        """Block until every submitted batch has called its `on_done`; re-raise a failure."""

    @abc.abstractmethod
    def close(self) -> None:
        """Finish in-flight work and release the compiled model."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path.name}, input={self.input_name}{list(self.input_shape)}, "
            f"precision={self.precision.value}, requests={self.num_requests})"
        )

    def check_batch(self, batch: np.ndarray) -> None:
        """Raise ValueError unless `batch` fits the model input (static dims must match)."""
        expected = self.input_shape
        if batch.ndim != len(expected) or any(
            want is not None and want != got for want, got in zip(expected, batch.shape, strict=True)
        ):
            shown = ["?" if d is None else d for d in expected]
            raise ValueError(f"{self.path.name} takes input of shape {shown}, got {list(batch.shape)}")


def check_model_file(path: str | os.PathLike[str], suffixes: tuple[str, ...]) -> Path:
    """The model file as a Path, or ModelError if it is missing or of the wrong kind."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ModelError(f"not a model file this engine reads (expected {', '.join(suffixes)})", path=path)
    if not path.is_file():
        raise ModelError("model file not found", path=path)
    if path.stat().st_size == 0:
        raise ModelError("model file is empty", path=path)
    return path


def load_error(exc: BaseException, path: Path) -> ModelError:
    """A backend's load failure as a one-line ModelError naming the file."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(exc).__name__
    return ModelError(f"cannot load model: {reason[:300]}", path=path)


_warned: set[str] = set()


def warn_once(key: str, message: str) -> None:
    """Warn the first time `key` comes up in this process (e.g. one bf16 fallback warning)."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def as_backend(value: Backend | str | None) -> Backend | None:
    return value if value is None else as_enum(Backend, value, what="backend")
