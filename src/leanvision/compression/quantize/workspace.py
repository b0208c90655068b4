"""The quantized model directory: checked, built in a staging sibling, committed whole.

Like `leanvision export`, the output directory is either the previous result or the new one,
never half of each, and an existing directory is replaced only if it holds nothing but the
files quantization writes.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from leanvision import __version__
from leanvision.core.card import CARD_FILENAME, ModelCard
from leanvision.core.enums import Precision
from leanvision.core.errors import ConfigError, ModelError
from leanvision.core.io import check_output_dir

OUTPUT_FILES = frozenset({"model.xml", "model.bin", "model.onnx", CARD_FILENAME, "quant_report.json",
                          "quant_report.md", "quant_report.html", "quant_sensitivity.png"})


def load_fp32_card(model_dir: Path) -> ModelCard:
    """The card of an FP32 model directory.

    Raises:
        ModelError: no directory, no or unreadable card, or a model already INT8 / mixed.
    """
    if not model_dir.is_dir():
        raise ModelError("model directory not found", path=model_dir)
    card = ModelCard.load(model_dir)
    if card.precision in (Precision.INT8, Precision.MIXED):
        raise ModelError(f"the model is already quantized ({CARD_FILENAME} says precision "
                         f"{card.precision.value}); quantize its FP32 export", path=model_dir)
    return card


def check_out(out: Path, model_dir: Path) -> None:
    """ConfigError unless `out` can become (or replace) a quantized model directory."""
    if out.resolve() == model_dir.resolve():
        raise ConfigError("--out is the input model directory; write the INT8 model elsewhere", path=out)
    check_output_dir(out, allowed=OUTPUT_FILES, what="a quantized model")


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def quantized_card(card: ModelCard, *, kept: Sequence[str], metrics: Mapping[str, float],
                   facts: Mapping[str, Any]) -> ModelCard:
    """The FP32 card updated for the INT8 model.

    The card has no field for lists, so the FP32 layer list and the calibration details go
    into `provenance` as JSON strings (`quantization_fp32_layers`, `quantization`).
    """
    provenance = {
        **card.provenance,
        "quantized_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quantizer_leanvision_version": __version__,
        "nncf_version": _version("nncf"),
        "onnxruntime_version": _version("onnxruntime"),
        "quantization_fp32_layers": json.dumps(list(kept)),
        "quantization": json.dumps(dict(facts), default=str),
    }
    return card.replace(precision=Precision.MIXED if kept else Precision.INT8,
                        metrics={**card.metrics, **metrics}, provenance=provenance)
