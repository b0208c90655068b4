"""`leanvision demo`: the README's main job on built-in synthetic data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from leanvision.cli.ui import out, progress_bar
from leanvision.core.errors import plural


def _table(summary: dict) -> Table:
    table = Table(title="leanvision demo: S0 on synthetic cytology (slim RetinaNet, OpenVINO)")
    for column in ("", "mAP@0.5 (%)", "slides/s", "images/s (800 px)", "tianchi score"):
        table.add_column(column, justify="right")
    table.add_row("FP32", f"{100 * summary['map50_fp32']:.2f}", f"{summary['slides_per_s_fp32']:.3f}",
                  f"{summary['images_per_s_fp32']:.1f}", f"{summary['tianchi_score_fp32']:.3f}")
    table.add_row("INT8", f"{100 * summary['map50_int8']:.2f}", f"{summary['slides_per_s_int8']:.3f}",
                  f"{summary['images_per_s_int8']:.1f}", f"{summary['tianchi_score_int8']:.3f}")
    return table


def demo(
    quick: bool = typer.Option(False, "--quick", help="A smaller run (~3 minutes): fewer tiles, smaller slides."),
    out_dir: Path = typer.Option(Path("leanvision-demo"), "--out", help="Working directory for the demo."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Synthesize S0's data, train, export, quantize INT8 with a budget, benchmark FP32 vs INT8."""
    from leanvision.core.resources import keep_freed_memory
    from leanvision.demo import DemoOptions, run_demo

    keep_freed_memory()
    options = DemoOptions.quick(seed) if quick else DemoOptions.full(seed)
    with progress_bar("demo") as update:
        summary = run_demo(out_dir, options, progress=lambda stage, done, total: update(done, total, stage))
    out.print(_table(summary))
    verdict = "within" if summary["drop"] <= summary["max_drop"] else "NOT within"
    out.print(f"INT8 vs FP32: {summary['speedup']:.2f}x slides/s, mAP@0.5 drop {summary['drop']:.2f} points "
              f"({verdict} the {summary['max_drop']} point budget; {plural(len(summary['kept_fp32_layers']), 'layer')} "
              "kept FP32)")
    out.print(f"machine: {summary['machine']}")
    out.print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items()))
    out.print(f"report: {summary['bench_html']}")
    out.print(f"summary: {out_dir / 'demo_summary.json'}")
