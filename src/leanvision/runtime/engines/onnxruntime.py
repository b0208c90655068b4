"""ONNX Runtime engine (CPU execution provider).

Async inference is a bounded pool: `num_requests` worker threads each run
`InferenceSession.run` (which ONNX Runtime allows concurrently on one session) and then the
caller's callback; `submit` blocks while every slot is busy.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from leanvision.core.deps import require
from leanvision.core.enums import Precision
from leanvision.core.errors import ConfigError
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


def _session_options(ort, options: EngineOptions):
    if options.streams not in (None, 1):
        raise ConfigError("ONNX Runtime runs one stream; use num_requests for parallel requests")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: its warnings about graph rewrites are noise to a user
    if options.threads is not None:
        so.intra_op_num_threads = options.threads
    return so


def _resolve_precision(hint: PrecisionHint) -> Precision:
    if hint is PrecisionHint.BF16:
        warn_once(
            "onnxruntime-bf16",
            "ONNX Runtime's CPU provider computes in fp32; the bf16 request is ignored",
        )
    return Precision.FP32


class OnnxRuntimeEngine(Engine):
    """A model run by ONNX Runtime on the CPU.

    Args:
        path: an `.onnx` file (FP32, or INT8 in QDQ form).
        options: threads and num_requests apply; there is no performance hint in ONNX
            Runtime, so THROUGHPUT only raises the default num_requests from 1 to 2.
    """

    backend = Backend.ONNXRUNTIME

    def __init__(self, path: str | os.PathLike[str], options: EngineOptions | None = None) -> None:
        ort = require("onnxruntime", extra="deploy", purpose="the ONNX Runtime engine")
        self.path: Path = check_model_file(path, (".onnx",))
        options = options or EngineOptions()
        self.options = options
        self.precision = _resolve_precision(options.precision)
        so = _session_options(ort, options)
        try:
            self._session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT's load errors share no public base class
            raise load_error(exc, self.path) from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise load_error(ValueError(f"expected one input, the model has {len(inputs)}"), self.path)
        self._input = inputs[0]
        self._outputs = tuple(o.name for o in self._session.get_outputs())
        default = 2 if options.performance is PerformanceHint.THROUGHPUT else 1
        self._num_requests = options.num_requests or default
        self._pool = ThreadPoolExecutor(self._num_requests, thread_name_prefix="leanvision-ort")
        self._slots = threading.BoundedSemaphore(self._num_requests)
        self._idle = threading.Condition()
        self._in_flight = 0
        self._error: BaseException | None = None

    @property
    def input_name(self) -> str:
        return self._input.name

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(d if isinstance(d, int) else None for d in self._input.shape)

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    @property
    def num_requests(self) -> int:
        return self._num_requests

    def infer(self, batch: np.ndarray) -> Outputs:
        self.check_batch(batch)
        values = self._session.run(None, {self._input.name: np.ascontiguousarray(batch)})
        return dict(zip(self._outputs, values, strict=True))

    def submit(self, batch: np.ndarray, on_done: OnDone) -> None:
        self.check_batch(batch)
        self._slots.acquire()  # back-pressure: wait for a free request slot
        with self._idle:
            self._in_flight += 1
        try:
            self._pool.submit(self._run, batch, on_done)
        except BaseException:
            self._finish()
            raise

    def _run(self, batch: np.ndarray, on_done: OnDone) -> None:
        try:
            on_done(self.infer(batch))
        except BaseException as exc:  # kept for wait_all: a pool thread has no caller to raise to
            with self._idle:
                self._error = self._error or exc
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()
        self._slots.release()

    def wait_all(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0)
            error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0)
        self._pool.shutdown(wait=True)
