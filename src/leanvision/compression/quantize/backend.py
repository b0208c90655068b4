"""The protocol both quantization backends implement: OpenVINO + NNCF (`openvino_nncf`) and
ONNX Runtime QDQ (`onnxruntime_qdq`). `quantize` drives either through these methods only.

A `model` is the backend's own graph object (an `openvino.Model`, an `onnx.ModelProto`);
the driver never looks inside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from leanvision.compression.quantize.groups import Node
from leanvision.compression.quantize.options import AdvancedOptions
from leanvision.runtime import Backend, PrecisionHint

Run = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


class QuantizerBackend(Protocol):
    """Read, quantize, edit, run and save one backend's graphs.

    Attributes:
        backend: the runtime that runs the saved model.
        model_files: the FP32 model files it reads, in order of preference.
        output_files: the files `save` writes.
    """

    backend: Backend
    model_files: tuple[str, ...]
    output_files: tuple[str, ...]

    def read(self, model_dir: Path) -> Any:
        """The FP32 model of `model_dir`; ModelError if there is none or it is unreadable."""
        ...

    def nodes(self, model: Any, groups: Mapping[str, str]) -> list[Node]:
        """The graph's operations in topological order, each with its layer group."""
        ...

    def is_quantized(self, model: Any) -> bool:
        """Whether the graph already holds INT8 operations."""
        ...

    def quantized_nodes(self, model: Any) -> set[str]:
        """Graph names of the operations that run in INT8."""
        ...

    def quantize(self, model: Any, calibration: Iterable[np.ndarray], *, images: int, ignored: Sequence[Node],
                 options: AdvancedOptions, reduce_range: bool) -> Any:
        """The INT8 model calibrated on `images` inputs, with `ignored` left in float."""
        ...

    def restore_fp32(self, quantized: Any, fp32: Any, nodes: Sequence[Node]) -> Any:
        """`quantized` with `nodes` back in float (their FP32 weights)."""
        ...

    def switchable(self, quantized: Any, fp32: Any, layers: Sequence[Node]) -> Any:
        """One graph where a boolean input turns each layer's INT8 emulation on or off."""
        ...

    def graph_order(self, model: Any) -> list[tuple[str, list[str]]]:
        """(operation, its inputs) in topological order."""
        ...

    def with_output(self, model: Any, name: str) -> Any:
        """The model with the tensor `name` as an extra output."""
        ...

    def runner(self, model: Any, precision: PrecisionHint = PrecisionHint.FP32) -> Run:
        """feeds -> outputs, compiled once for this CPU."""
        ...

    def input_name(self, model: Any) -> str:
        """The model's image input."""
        ...

    def save(self, model: Any, out_dir: Path) -> list[Path]:
        """Write the model's files into `out_dir`; the paths written."""
        ...
