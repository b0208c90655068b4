"""`export_model`: a training checkpoint -> an exported model directory, checked against torch.

    result = export_model("runs/s0/best.pt", format="openvino", out=Path("exported/s0"))
    result.files         # model.xml, model.bin, model_card.json, parity.json
    result.parity        # ParityReport: max |diff| of raw outputs, detection agreement
                         # (counting: relative count difference)

The directory is built in a temporary sibling and renamed into place only when everything
(export, conversion, parity) succeeded, so `out` is either the previous export or the new
one, never half of each. An existing `out` is replaced only when it is an exported model
directory (or empty): export never deletes a directory it did not write.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.card import CARD_FILENAME, ModelCard
from leanvision.core.config import as_enum
from leanvision.core.errors import ConfigError, ModelError
from leanvision.core.io import atomic_write_text, check_output_dir, replace_dir, staging_dir
from leanvision.export.card import export_card, provenance
from leanvision.export.parity import (
    FP32_PARITY,
    ParityReport,
    ParityTolerance,
    check_parity,
    load_parity_images,
    synthetic_images,
    task_pieces,
    torch_reference,
)
from leanvision.runtime import Backend

PARITY_FILENAME = "parity.json"
SYNTHETIC_PARITY_IMAGES = 3
# Files an exported model directory may hold: the only ones `out` may contain to be replaced.
EXPORT_FILES = frozenset({"model.onnx", "model.xml", "model.bin", CARD_FILENAME, PARITY_FILENAME})


class ExportFormat(enum.StrEnum):
    ONNX = "onnx"  # model.onnx
    OPENVINO = "openvino"  # model.xml + model.bin (FP32 weights)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_model` wrote.

    Attributes:
        out: the model directory.
        files: the files in it.
        card: the exported model's card (as saved).
        parity: the parity check, None with check=False.
        timings: seconds per stage: "load", "export", "convert", "parity", "total".
    """

    out: Path
    files: tuple[Path, ...]
    card: ModelCard
    parity: ParityReport | None
    timings: dict[str, float]


def as_format(value: ExportFormat | str) -> ExportFormat:
    return as_enum(ExportFormat, value, what="export format")


def checkpoint_file(path: Path) -> Path:
    """A run directory means its best.pt (else last.pt); a file is itself."""
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise ModelError("no best.pt or last.pt in the run directory", path=path)
    if not path.is_file():
        raise ModelError("checkpoint not found", path=path)
    return path


def check_out(out: Path) -> None:
    """ConfigError unless `out` can become (or be replaced by) an exported model directory."""
    check_output_dir(out, allowed=EXPORT_FILES, what="an exported model")


def _input_size(card: ModelCard, input_size: tuple[int, int] | None) -> tuple[int, int]:
    size = (card.input.height, card.input.width) if input_size is None else tuple(int(v) for v in input_size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"input size must be a positive (height, width), got {input_size}")
    return size[0], size[1]


def _check_outputs(proto: Any, card: ModelCard, with_nms: bool) -> None:
    """ModelError unless the graph's output shapes are what the card says."""
    from leanvision.export.onnx import output_shapes

    shapes = output_shapes(proto)
    if with_nms:
        return  # fixed (N, K) outputs; the parity check runs them
    task_pieces(card.task).check_outputs(shapes, card)


def _build(model: Any, card: ModelCard, with_nms: bool) -> tuple[Any, Any]:
    """(module to export, custom ONNX translations) for the body or the body with NMS."""
    if not with_nms:
        return model, None
    from leanvision.export.nms_graph import DetectWithNms, custom_translation

    return DetectWithNms(model, card).eval(), custom_translation()


@dataclasses.dataclass(frozen=True)
class _Job:
    """One export: what to read, what to write, and how to check it."""

    checkpoint: Path
    format: ExportFormat
    with_nms: bool
    check: bool
    parity_images: Path | None
    tolerance: ParityTolerance
    images: tuple[np.ndarray, ...] = ()
    source: str = ""


def _write(job: _Job, model: Any, card: ModelCard, staging: Path, timings: dict[str, float]) -> tuple[ModelCard, ParityReport | None]:
    from leanvision.export.onnx import export_onnx

    module, translation = _build(model, card, job.with_nms)
    start = time.perf_counter()
    onnx_path = staging / "model.onnx"
    output_names = [o.name for o in card.outputs]
    proto = export_onnx(module, (card.input.height, card.input.width), onnx_path,
                        output_names=output_names, custom_translation=translation)
    _check_outputs(proto, card, job.with_nms)
    timings["export"] = time.perf_counter() - start
    if job.format is ExportFormat.OPENVINO:
        from leanvision.export.openvino import onnx_to_ir

        start = time.perf_counter()
        onnx_to_ir(onnx_path, staging / "model.xml")
        onnx_path.unlink()
        timings["convert"] = time.perf_counter() - start
    card.save(staging / CARD_FILENAME)
    if not job.check:
        return card, None
    start = time.perf_counter()
    report = _parity(job, module, output_names, model, card, staging)
    timings["parity"] = time.perf_counter() - start
    card = card.replace(metrics={**card.metrics, **report.metrics()})
    card.save(staging / CARD_FILENAME)
    return card, report


def _parity_images(job: _Job, input_hw: tuple[int, int]) -> tuple[list[np.ndarray], str]:
    """The parity images and where they came from; read before exporting, to fail early."""
    if not job.check:
        return [], ""
    if job.parity_images is not None:
        return load_parity_images(job.parity_images), str(job.parity_images)
    return synthetic_images(SYNTHETIC_PARITY_IMAGES, input_hw), "synthetic"


def _parity(job: _Job, module: Any, output_names: list[str], model: Any, card: ModelCard, staging: Path) -> ParityReport:
    backends = (Backend.OPENVINO,) if job.format is ExportFormat.OPENVINO else (Backend.ONNXRUNTIME, Backend.OPENVINO)
    compare = ("scores",) if job.with_nms else None
    reference = torch_reference(module, output_names, model, card.postprocess, compare=compare, task=card.task)
    report = check_parity(staging, reference, list(job.images), backends=backends, source=job.source,
                          tolerance=job.tolerance)
    atomic_write_text(staging / PARITY_FILENAME, _json(report.to_dict()))
    if not report.passed:
        tol = job.tolerance
        agreement = task_pieces(card.task).disagreement(report, tol)
        raise ModelError(
            f"exported model disagrees with torch: max |diff| {report.max_abs_diff:.3g} (allowed "
            f"{tol.raw_atol:g} + {tol.raw_rtol:g} x output scale), {agreement}; {report.summary()}",
            path=job.checkpoint,
        )
    return report


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, indent=2) + "\n"


def export_model(
    checkpoint: str | os.PathLike[str],
    *,
    format: ExportFormat | str,
    out: str | os.PathLike[str],
    with_nms: bool = False,
    input_size: tuple[int, int] | None = None,
    check: bool = True,
    parity_images: str | os.PathLike[str] | None = None,
    tolerance: ParityTolerance = FP32_PARITY,
) -> ExportResult:
    """Export a checkpoint's network to ONNX or OpenVINO IR with its model card.

    Args:
        checkpoint: a training checkpoint, or a run directory (its best.pt, else last.pt).
        format: "onnx" (model.onnx) or "openvino" (model.xml + model.bin, FP32 weights).
        out: the model directory to write (replaced whole if it holds a previous export).
        with_nms: detection only: put decode and NMS in the graph (outputs boxes, scores,
            labels, num_detections) instead of exporting the body for numpy decode and NMS.
            The outputs are the task's (`export.tasks`: a counter's density map).
        input_size: (height, width) of the exported input; default the card's.
        check: run the parity check (torch vs the runtime engines, batch 1 and > 1).
        parity_images: a directory of images for the parity check instead of synthetic ones.
        tolerance: parity tolerances (see `ParityTolerance`).

    Raises:
        ModelError: missing or corrupt checkpoint, failed export, parity above tolerance.
        ConfigError: unknown format, bad input size, unusable output directory.
        DataError: `parity_images` has no readable image.
    """
    from leanvision.training.checkpoint import model_from_checkpoint

    job = _Job(checkpoint_file(Path(checkpoint)), as_format(format), with_nms, check,
               None if parity_images is None else Path(parity_images), tolerance)
    out = Path(out)
    check_out(out)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    model, trained = model_from_checkpoint(job.checkpoint)
    pieces = task_pieces(trained.task)
    outputs = pieces.outputs
    if with_nms and not pieces.nms_in_graph:
        raise ConfigError(f"--with-nms puts detection decoding in the graph; '{trained.name}' is a "
                          f"{trained.task.value} model", path=job.checkpoint)
    if with_nms:
        from leanvision.export.nms_graph import in_graph_outputs

        outputs = in_graph_outputs()
    card = export_card(model, trained, input_size=_input_size(trained, input_size), outputs=outputs)
    images, source = _parity_images(job, (card.input.height, card.input.width))
    job = dataclasses.replace(job, images=tuple(images), source=source)
    card = card.replace(provenance=provenance(job.checkpoint, exporter="torch.onnx dynamo", extra={
        "format": job.format.value, "with_nms": str(with_nms).lower()}))
    timings["load"] = time.perf_counter() - start
    with staging_dir(out) as staging:
        card, report = _write(job, model, card, staging, timings)
        replace_dir(staging, out)
    timings["total"] = time.perf_counter() - start
    return ExportResult(out, tuple(sorted(out.iterdir())), card, report, timings)
