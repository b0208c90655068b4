"""The exported model's card: the checkpoint's card at the export input size, plus export facts.

From the checkpoint's card: task, class names, normalisation, colour order, resize rule,
post-processing and the metrics measured in training. Recomputed for the export: the input
size, the anchors with the feature sizes measured at that size and the box coder
(detection), the output stride (counting), the output names and layouts, the layer groups,
FP32 precision, and provenance (checkpoint path and sha256, library versions, UTC date,
exporter).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from leanvision import __version__
from leanvision.core.card import InputSpec, ModelCard, OutputSpec
from leanvision.core.enums import Precision
from leanvision.core.errors import ModelError
from leanvision.export.names import group_patterns

_LIBRARIES = ("torch", "torchvision", "onnx", "onnxscript", "openvino", "onnxruntime")


def sha256_of(path: Path, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Installed versions of the export stack, e.g. {"torch_version": "2.14.1", ...}."""
    versions = {"leanvision_version": __version__}
    for name in _LIBRARIES:
        try:
            versions[f"{name}_version"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[f"{name}_version"] = "not installed"
    return versions


def provenance(checkpoint: Path, *, exporter: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where an exported model came from: checkpoint and its hash, versions, date, exporter."""
    return {
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_sha256": sha256_of(checkpoint),
        **library_versions(),
        "exported_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exporter": exporter,
        **dict(extra or {}),
    }


def export_card(
    model: Any,
    trained: ModelCard,
    *,
    input_size: tuple[int, int],
    outputs: tuple[OutputSpec, ...],
) -> ModelCard:
    """The card of `model` exported at `input_size` (H, W), from its training card.

    Args:
        model: a detection or counting model honouring its contract (`card`, `parts`).
        trained: the checkpoint's card (normalisation, resize, post-processing, metrics).
        input_size: (height, width) of the exported input.
        outputs: the exported graph's outputs, in order.

    Raises:
        ModelError: the model does not describe itself with a card and parts.
    """
    if not hasattr(model, "card") or not hasattr(model, "parts"):
        raise ModelError(f"{type(model).__name__} has no card() or parts: not an exportable model")
    fresh = model.card(class_names=trained.class_names, input_size=input_size,
                       mean=trained.input.mean, std=trained.input.std)
    spec = InputSpec.from_dict(trained.input.to_dict() | {"height": input_size[0], "width": input_size[1]})
    return trained.replace(
        input=spec, outputs=outputs, anchors=fresh.anchors, box_coder=fresh.box_coder,
        output_stride=fresh.output_stride, precision=Precision.FP32, layer_groups=group_patterns(model.parts),
        metrics=dict(trained.metrics), provenance={},
    )


def expected_anchors(card: ModelCard) -> int:
    """Anchors the card implies: sum over levels of h * w * anchors per cell."""
    if card.anchors is None or card.anchors.feature_sizes is None:
        raise ModelError(f"card '{card.name}' has no anchors with measured feature sizes")
    return sum(
        h * w * len(sizes) * len(ratios)
        for (h, w), sizes, ratios in zip(card.anchors.feature_sizes, card.anchors.sizes,
                                         card.anchors.aspect_ratios, strict=True)
    )


def expected_density_shape(card: ModelCard) -> tuple[int, int, int]:
    """(1, ceil(H / stride), ceil(W / stride)): a counting model's density output per image."""
    if card.output_stride is None:
        raise ModelError(f"card '{card.name}' is a counting card without an output_stride")
    stride = card.output_stride
    return 1, -(-card.input.height // stride), -(-card.input.width // stride)
