"""Measured throughput of several model files, side by side, through the deployment engines.

Every model is opened with the same `EngineOptions` (the throughput hint: several requests
in flight, as a tile pipeline runs them) and fed the same preprocessed image. Models are
measured in turn within each round and the median round is reported, so a machine that gets
busier or quieter during the run affects all of them alike. Each model is warmed up first
(the first inferences pay for memory allocation and kernel selection).
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from leanvision.runtime import Backend, EngineOptions, PrecisionHint, open_engine

WARMUP = 3


@dataclasses.dataclass(frozen=True)
class SpeedCase:
    """One model to time: a label for the report, its file, backend and float precision."""

    label: str
    path: Path
    backend: Backend
    precision: PrecisionHint = PrecisionHint.FP32


@dataclasses.dataclass(frozen=True)
class Throughput:
    """Measured images per second of one case.

    Attributes:
        label: the case's label.
        images_per_s: median over rounds.
        rounds: images per second of each round.
        precision: the float precision the engine reports it ran (fp32 or bf16).
        requests: inference requests kept in flight.
    """

    label: str
    images_per_s: float
    rounds: tuple[float, ...]
    precision: str
    requests: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _timed_run(engine, batch: np.ndarray, seconds: float) -> float:
    """Images per second of `engine` kept busy with async requests for about `seconds`."""
    done = 0
    lock = threading.Lock()

    def on_done(_outputs) -> None:
        nonlocal done
        with lock:
            done += 1

    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        engine.submit(batch, on_done)
    engine.wait_all()
    return done * len(batch) / (time.perf_counter() - start)


def measure_throughput(cases: Sequence[SpeedCase], batch: np.ndarray, *, seconds: float, rounds: int,
                       options: EngineOptions) -> list[Throughput]:
    """Throughput of each case on `batch` ((1, 3, H, W) model input), in the given order.

    Args:
        cases: the models to compare.
        batch: the input every model gets.
        seconds: inference time per model per round.
        rounds: rounds; the median is reported.
        options: engine options shared by every case (the precision is each case's).
    """
    engines = [open_engine(c.path, backend=c.backend, options=dataclasses.replace(options, precision=c.precision))
               for c in cases]
    try:
        for engine in engines:
            for _ in range(WARMUP):
                engine.infer(batch)
        per_round = [[_timed_run(engine, batch, seconds) for engine in engines] for _ in range(rounds)]
    finally:
        for engine in engines:
            engine.close()
    results = []
    for index, (case, engine) in enumerate(zip(cases, engines, strict=True)):
        values = tuple(round(r[index], 3) for r in per_round)
        results.append(Throughput(case.label, statistics.median(values), values, engine.precision.value,
                                  engine.num_requests))
    return results
