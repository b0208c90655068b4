"""`leanvision profile MODEL`: parameters and GMACs per part (backbone / FPN / head)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from leanvision.cli.ui import json_option, json_result, out


def profile(
    model: str = typer.Argument(..., help="Registered model name, e.g. retinanet_mbv2_slim."),
    input: int = typer.Option(800, "--input", min=32, help="Square input side in pixels."),
    num_classes: int = typer.Option(80, "--num-classes", min=1, help="Classes scored by the head."),
    json_out: Path | None = json_option("{parts, total}"),
) -> None:
    """Count parameters and multiply-accumulates of each part of MODEL for one image."""
    import torch

    from leanvision.models import create_model
    from leanvision.models.profile import profile_model

    # Built on the meta device: no weights are allocated or initialised, so R50 profiles in a second.
    with torch.device("meta"):
        net = create_model(model, num_classes=num_classes)
    result = profile_model(net, input_size=(input, input))
    with json_result(json_out) as emit:
        out.print(_table(result, model, input, num_classes))
        emit(result.to_dict())


def _table(result, model: str, input: int, num_classes: int) -> Table:
    table = Table(title=f"{model}, {input}x{input}, {num_classes} classes")
    for column in ("part", "GMACs", "share", "params (M)"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for part, cost in result.parts.items():
        share = cost.gmacs / result.total.gmacs if result.total.gmacs else 0.0
        table.add_row(part, f"{cost.gmacs:.2f}", f"{share:.1%}", f"{cost.params_m:.2f}")
    table.add_row("total", f"{result.total.gmacs:.2f}", "100.0%", f"{result.total.params_m:.2f}", style="bold")
    return table
