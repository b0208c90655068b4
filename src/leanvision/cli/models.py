"""`leanvision models`: the registered models with task, size, cost and offline weights."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from leanvision.cli.ui import json_option, json_result, out


def _row(name: str, task: str, input_size: int, num_classes: int) -> dict:
    import torch

    from leanvision.models import create_model
    from leanvision.models.pretrained import offline_weights
    from leanvision.models.profile import profile_model

    # On the meta device: nothing is allocated or initialised, so a ResNet-50 costs a second.
    with torch.device("meta"):
        net = create_model(name, num_classes=num_classes)
    total = profile_model(net, input_size=(input_size, input_size)).total
    arch = getattr(net, "arch", None) or getattr(getattr(net, "backbone", None), "arch", None)
    weights = offline_weights(arch) if arch else {}
    return {"name": name, "task": task, "backbone": arch, "params_m": round(total.params_m, 3),
            "gmacs": round(total.gmacs, 3), "pretrained": weights}


def _weights_text(weights: dict[str, str | None]) -> str:
    if not weights:
        return "-"
    return ", ".join(f"{n} ({where})" if where else f"{n} (not on this machine)" for n, where in weights.items())


def models(
    task: str = typer.Option(None, "--task", help="Only the models of this task: detect, count, classify."),
    input: int = typer.Option(640, "--input", min=32, help="Square input side for GMACs, in pixels."),
    num_classes: int = typer.Option(1, "--num-classes", min=1, help="Classes scored by the head, for params and GMACs."),
    json_out: Path | None = json_option("{models: [...]}"),
) -> None:
    """List the registered models: task, backbone, parameters, GMACs and which pretrained
    weights are on this machine (usable offline with model.weights_backbone=NAME)."""
    from leanvision.models.registry import list_models, model_entry

    rows = [_row(name, model_entry(name).task.value, input, num_classes) for name in list_models(task)]
    with json_result(json_out) as emit:
        out.print(_table(rows, input, num_classes))
        emit({"models": rows})


def _table(rows: list[dict], input: int, num_classes: int) -> Table:
    table = Table(title=f"registered models ({input}x{input}, {num_classes} class{'es' if num_classes > 1 else ''})")
    for column in ("model", "task", "backbone", "params (M)", "GMACs", "pretrained weights offline"):
        table.add_column(column, justify="right" if column in ("params (M)", "GMACs") else "left")
    for r in rows:
        table.add_row(r["name"], r["task"], r["backbone"] or "-", f"{r['params_m']:.2f}", f"{r['gmacs']:.2f}",
                      _weights_text(r["pretrained"]))
    return table
