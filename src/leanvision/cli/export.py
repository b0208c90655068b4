"""`leanvision export CKPT --format onnx|openvino --out DIR`: model file + model card + parity check."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from leanvision.cli.ui import json_option, json_result, out
from leanvision.core.errors import ConfigError
from leanvision.export.api import ExportFormat

_SIZE = re.compile(r"\s*(\d+)\s*(?:[x,\s]\s*(\d+))?\s*")


def parse_input_size(text: str | None) -> tuple[int, int] | None:
    """"HxW", "H,W", "H W" or "S" (square) -> (height, width); None stays None."""
    if text is None:
        return None
    match = _SIZE.fullmatch(text.lower())
    if match is None:
        raise ConfigError(f"--input-size must be HxW, H,W or S (pixels), got {text!r}")
    height = int(match.group(1))
    return height, int(match.group(2) or height)


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.1f} kB"


def export(
    checkpoint: Path = typer.Argument(..., help="A checkpoint (.pt) or a run directory (its best.pt, else last.pt)."),
    format_: ExportFormat = typer.Option(..., "--format", "-f", help="onnx (model.onnx) or openvino (model.xml + .bin, FP32)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Model directory to write; a previous export there is replaced whole."),
    with_nms: bool = typer.Option(False, "--with-nms", help="Put decode + NMS in the graph (outputs boxes, scores, labels, num_detections)."),
    input_size: str | None = typer.Option(None, "--input-size", help="Exported input size: HxW, H,W or S (default: the checkpoint card's)."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the parity check against torch."),
    parity_images: Path | None = typer.Option(None, "--parity-images", help="Images for the parity check (default: synthetic ones)."),
    json_out: Path | None = json_option(),
) -> None:
    """Export CKPT's network (dynamic batch) with model_card.json, checked against torch on the engine(s) that run it."""
    from leanvision.export import export_model

    with json_result(json_out) as emit:
        result = export_model(checkpoint, format=format_, out=out_dir, with_nms=with_nms,
                              input_size=parse_input_size(input_size), check=not no_check, parity_images=parity_images)
        card = result.card
        files = ", ".join(f"{p.name} ({_size(p)})" for p in result.files)
        out.print(f"{result.out}: {files}", markup=False, highlight=False)
        out.print(f"{card.name}, input {card.input.height}x{card.input.width}, outputs "
                  f"{', '.join(o.name for o in card.outputs)}; layer groups {', '.join(card.layer_groups)}",
                  markup=False, highlight=False)
        if result.parity is not None:
            out.print(result.parity.summary(), markup=False, highlight=False)
        out.print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()), markup=False,
                  highlight=False)
        emit({"out": str(result.out), "files": [str(p) for p in result.files], "timings": result.timings,
              "parity": None if result.parity is None else result.parity.to_dict(),
              "layer_groups": card.layer_groups, "metrics": card.metrics})
