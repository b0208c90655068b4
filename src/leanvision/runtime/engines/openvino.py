"""OpenVINO engine (CPU plugin), reading an IR (`.xml` + `.bin`) or an ONNX file.

Precision: the CPU plugin's default inference precision is bf16 on CPUs with bf16 support
(AVX-512 BF16 / AMX), so an FP32 engine sets INFERENCE_PRECISION_HINT=f32 explicitly
(measured: leaving it unset on an AMX machine ran bf16 and was reported as "FP32" by
naive benchmarks). A bf16 request on a CPU without bf16 (OPTIMIZATION_CAPABILITIES lacks
"BF16") warns once and runs f32. `precision` reports what the compiled model really uses.

Async inference goes through `AsyncInferQueue`: its `start_async` waits for an idle
request, which gives back-pressure for free; the callback copies the outputs out of the
request before handing them on, because the request is reused by the next batch.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.deps import require
from leanvision.core.enums import Precision
from leanvision.runtime.engines.base import (
    Backend,
    Engine,
    EngineOptions,
    OnDone,
    Outputs,
    PerformanceHint,
    PrecisionHint,
    check_model_file,
    load_error,
    warn_once,
)

_DEVICE = "CPU"
_TYPE_TO_PRECISION = {"f32": Precision.FP32, "bf16": Precision.BF16, "f16": Precision.FP16}


def _import_openvino():
    return require("openvino", extra="deploy", purpose="the OpenVINO engine")


def cpu_supports_bf16(core: Any) -> bool:
    """True when the CPU plugin can compute in bf16 on this machine (detected, not assumed)."""
    return "BF16" in core.get_property(_DEVICE, "OPTIMIZATION_CAPABILITIES")


def _precision_config(ov: Any, core: Any, hint: PrecisionHint) -> dict[str, Any]:
    if hint is PrecisionHint.AUTO:
        return {}
    if hint is PrecisionHint.BF16 and not cpu_supports_bf16(core):
        warn_once(
            "openvino-bf16",
            "this CPU has no bf16 support (OpenVINO OPTIMIZATION_CAPABILITIES lacks BF16); "
            "running fp32 instead",
        )
        hint = PrecisionHint.FP32
    element = ov.Type.bf16 if hint is PrecisionHint.BF16 else ov.Type.f32
    return {ov.properties.hint.inference_precision: element}


def _compile_config(ov: Any, core: Any, options: EngineOptions) -> dict[str, Any]:
    hints = ov.properties.hint
    mode = {
        PerformanceHint.LATENCY: hints.PerformanceMode.LATENCY,
        PerformanceHint.THROUGHPUT: hints.PerformanceMode.THROUGHPUT,
    }[options.performance]
    config: dict[str, Any] = {hints.performance_mode: mode}
    config |= _precision_config(ov, core, options.precision)
    if options.threads is not None:
        config[ov.properties.inference_num_threads] = options.threads
    if options.streams is not None:
        config[ov.properties.num_streams] = options.streams
    return config


def _shape(port: Any) -> tuple[int | None, ...]:
    return tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())


def _output_name(port: Any, index: int) -> str:
    names = port.get_names()
    return port.get_any_name() if names else f"output{index}"


def _read_model(path: Path) -> Any:
    """Read with the frontend the suffix names. `Core.read_model` would probe every frontend
    on a damaged file, and the TensorFlow one prints parse errors to stderr."""
    from openvino.frontend import FrontEndManager

    frontend = FrontEndManager().load_by_framework("ir" if path.suffix.lower() == ".xml" else "onnx")
    return frontend.convert(frontend.load(str(path)))


class OpenVinoEngine(Engine):
    """A model compiled by OpenVINO for the CPU.

    Args:
        path: an IR `.xml` (with its `.bin` beside it) or an `.onnx` file; FP32 or INT8
            (NNCF IR or QDQ ONNX).
        options: threads, streams, performance hint and precision hint are passed to the
            plugin; num_requests defaults to the compiled model's optimal number.
    """

    backend = Backend.OPENVINO

    def __init__(self, path: str | os.PathLike[str], options: EngineOptions | None = None) -> None:
        ov = _import_openvino()
        self.path: Path = check_model_file(path, (".xml", ".onnx"))
        options = options or EngineOptions()
        self.options = options
        core = ov.Core()
        self._compiled = self._compile(ov, core, options)
        precision = str(self._compiled.get_property(ov.properties.hint.inference_precision))
        self.precision = _TYPE_TO_PRECISION.get(_type_name(precision), Precision.FP32)
        self._input = self._compiled.input(0)
        self._outputs = tuple(_output_name(p, i) for i, p in enumerate(self._compiled.outputs))
        optimal = self._compiled.get_property(ov.properties.optimal_number_of_infer_requests)
        self._num_requests = options.num_requests or int(optimal)
        self._request = self._compiled.create_infer_request()
        self._request_lock = threading.Lock()
        self._queue = ov.AsyncInferQueue(self._compiled, self._num_requests)
        self._queue.set_callback(self._on_complete)
        self._error_lock = threading.Lock()
        self._error: BaseException | None = None

    def _compile(self, ov: Any, core: Any, options: EngineOptions) -> Any:
        if self.path.suffix.lower() == ".xml" and not self.path.with_suffix(".bin").is_file():
            raise load_error(FileNotFoundError(f"weights file {self.path.with_suffix('.bin').name} is missing"), self.path)
        config = _compile_config(ov, core, options)
        try:
            model = _read_model(self.path)
            if len(model.inputs) != 1:
                raise ValueError(f"expected one input, the model has {len(model.inputs)}")
            return core.compile_model(model, _DEVICE, config)
        except Exception as exc:  # OpenVINO's errors (GeneralFailure, RuntimeError) share no base
            raise load_error(exc, self.path) from None

    @property
    def input_name(self) -> str:
        return self._input.get_any_name() if self._input.get_names() else "input"

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return _shape(self._input)

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    @property
    def num_requests(self) -> int:
        return self._num_requests

    def _copy_outputs(self, request: Any) -> Outputs:
        # The request's output tensors are overwritten by its next inference: copy them out.
        return {name: np.array(request.get_output_tensor(i).data) for i, name in enumerate(self._outputs)}

    def infer(self, batch: np.ndarray) -> Outputs:
        self.check_batch(batch)
        with self._request_lock:  # one sync request, shared by the caller's threads
            self._request.infer({0: batch})
            return self._copy_outputs(self._request)

    def submit(self, batch: np.ndarray, on_done: OnDone) -> None:
        self.check_batch(batch)
        self._queue.start_async({0: batch}, on_done)  # blocks until a request is idle

    def _on_complete(self, request: Any, on_done: OnDone) -> None:
        try:
            on_done(self._copy_outputs(request))
        except BaseException as exc:  # kept for wait_all: OpenVINO's thread has no caller
            with self._error_lock:
                self._error = self._error or exc

    def wait_all(self) -> None:
        self._queue.wait_all()
        with self._error_lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        self._queue.wait_all()


def _type_name(text: str) -> str:
    """'<Type: 'float32'>' or 'f32' -> 'f32' (OpenVINO prints element types either way)."""
    for short, long in (("bf16", "bfloat16"), ("f16", "float16"), ("f32", "float32")):
        if short == text or long in text:
            return short
    return text
