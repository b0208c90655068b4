"""Inference engines, one module per backend; the backend library is imported on first use.

`open_engine` picks the backend from the file: `.onnx` runs on ONNX Runtime unless
`backend="openvino"`; `.xml` (OpenVINO IR) runs on OpenVINO.
"""

from __future__ import annotations

import os
from pathlib import Path

from leanvision.core.errors import ModelError
from leanvision.runtime.engines.base import (
    Backend,
    Engine,
    EngineOptions,
    OnDone,
    Outputs,
    PerformanceHint,
    PrecisionHint,
    as_backend,
)

__all__ = [
    "Backend",
    "Engine",
    "EngineOptions",
    "OnDone",
    "Outputs",
    "PerformanceHint",
    "PrecisionHint",
    "open_engine",
]


def _backend_for(path: Path, backend: Backend | None) -> Backend:
    suffix = path.suffix.lower()
    if suffix == ".xml":
        if backend is Backend.ONNXRUNTIME:
            raise ModelError("ONNX Runtime cannot run an OpenVINO IR; use backend=openvino", path=path)
        return Backend.OPENVINO
    if suffix == ".onnx":
        return backend or Backend.ONNXRUNTIME
    raise ModelError("unknown model file type (expected .onnx or .xml)", path=path)


def open_engine(
    model_path: str | os.PathLike[str],
    *,
    backend: Backend | str | None = None,
    options: EngineOptions | None = None,
) -> Engine:
    """Open `model_path` on the backend its type (or `backend`) calls for.

    Raises:
        ModelError: the file is missing, of an unknown type or cannot be loaded.
        MissingExtraError: the backend's package is not installed.
    """
    path = Path(model_path)
    chosen = _backend_for(path, as_backend(backend))
    if chosen is Backend.OPENVINO:
        from leanvision.runtime.engines.openvino import OpenVinoEngine

        return OpenVinoEngine(path, options)
    from leanvision.runtime.engines.onnxruntime import OnnxRuntimeEngine

    return OnnxRuntimeEngine(path, options)
