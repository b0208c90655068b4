"""Per-layer INT8 sensitivity: how much output error goes away when one layer stays FP32.

Re-quantizing once per layer would cost ~110 NNCF runs of 10-35 s for the slim RetinaNet.
Instead the model is quantized once, and a single "switchable" copy of it lets any set of
layers read their FP32 inputs (see the backends' `switchable`). Each layer is scored on a few
calibration images by the error of the raw outputs against the FP32 model:

    error = mean over outputs of  sum((y_int8 - y_fp32)^2) / sum(y_fp32^2)   (noise / signal)
    SQNR  = -10 log10(error) dB
    gain  = error(all layers INT8) - error(this layer alone kept FP32)

The layer with the largest gain is the one whose quantization costs most: it is the first
to keep in FP32. Both errors come from the same switchable graph (INT8 emulated in float),
so the difference isolates the layer.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from leanvision.compression.quantize.groups import Node

Outputs = Mapping[str, np.ndarray]


def output_error(reference: Outputs, got: Outputs, names: Sequence[str]) -> float:
    """Mean over `names` of the noise-to-signal ratio sum((got - ref)^2) / sum(ref^2)."""
    ratios = []
    for name in names:
        ref = np.asarray(reference[name], np.float64)
        diff = np.asarray(got[name], np.float64) - ref
        signal = float(np.sum(ref * ref))
        ratios.append(float(np.sum(diff * diff)) / max(signal, 1e-30))
    return float(np.mean(ratios))


def sqnr_db(error: float) -> float:
    """Signal-to-quantization-noise ratio in dB of a noise-to-signal ratio (inf for 0)."""
    return math.inf if error <= 0 else -10.0 * math.log10(error)


@dataclasses.dataclass(frozen=True)
class LayerSensitivity:
    """One layer's score.

    Attributes:
        layer: the layer name.
        group: its card group ("" if none).
        error: output noise/signal with this layer alone kept FP32.
        gain: error(all INT8) - error; positive when keeping it FP32 helps.
    """

    layer: str
    group: str
    error: float
    gain: float

    @property
    def sqnr_db(self) -> float:
        return sqnr_db(self.error)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "group": self.group, "error": self.error, "gain": self.gain,
                "sqnr_db": _finite(self.sqnr_db)}


@dataclasses.dataclass(frozen=True)
class Sensitivity:
    """Layers ranked by gain, most sensitive first.

    Attributes:
        error_all: output noise/signal with every layer INT8.
        layers: per layer, most sensitive first (ties by graph order).
        images: calibration images the errors were measured on.
        seconds: wall time of the ranking.
    """

    error_all: float
    layers: tuple[LayerSensitivity, ...]
    images: int
    seconds: float

    @property
    def sqnr_all_db(self) -> float:
        return sqnr_db(self.error_all)

    def order(self) -> list[str]:
        return [s.layer for s in self.layers]

    def to_dict(self) -> dict:
        return {"error_all": self.error_all, "sqnr_all_db": _finite(self.sqnr_all_db), "images": self.images,
                "seconds": self.seconds, "layers": [s.to_dict() for s in self.layers]}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


Switched = Callable[[np.ndarray], Outputs]  # keep mask (L,) bool -> raw outputs on the images


def rank_layers(run: Switched, reference: Outputs, layers: Sequence[Node], *,
                images: int, progress: Callable[[int, int], None] | None = None) -> Sensitivity:
    """Score every layer of a switchable model (see the module docstring).

    Args:
        run: runs the switchable model on the scoring images with a keep mask.
        reference: the FP32 model's raw outputs on the same images.
        layers: the switchable model's layers, in the mask's order.
        images: how many images `run` scores on (reported).
        progress: called as progress(done, total).
    """
    start = time.perf_counter()
    names = sorted(reference)
    mask = np.zeros(len(layers), bool)
    error_all = output_error(reference, run(mask), names)
    scores = []
    for index, layer in enumerate(layers):
        mask[:] = False
        mask[index] = True
        error = output_error(reference, run(mask), names)
        scores.append(LayerSensitivity(layer.name, layer.group, error, error_all - error))
        if progress is not None:
            progress(index + 1, len(layers))
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i].gain, i))
    return Sensitivity(error_all, tuple(scores[i] for i in ranked), images, time.perf_counter() - start)
