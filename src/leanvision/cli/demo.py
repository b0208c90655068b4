"""`leanvision demo`: the README's main job on built-in synthetic data."""

from __future__ import annotations

import enum
from pathlib import Path

import typer
from rich.table import Table

from leanvision.cli.ui import out, progress_bar
from leanvision.core.errors import plural


class DemoTask(enum.StrEnum):
    DETECT = "detect"
    CLASSIFY = "classify"


def _table(summary: dict) -> Table:
    table = Table(title="leanvision demo: S0 on synthetic cytology (slim RetinaNet, OpenVINO)")
    for column in ("", "mAP@0.5 (%)", "slides/s", "images/s (800 px)", "tianchi score"):
        table.add_column(column, justify="right")
    table.add_row("FP32", f"{100 * summary['map50_fp32']:.2f}", f"{summary['slides_per_s_fp32']:.3f}",
                  f"{summary['images_per_s_fp32']:.1f}", f"{summary['tianchi_score_fp32']:.3f}")
    table.add_row("INT8", f"{100 * summary['map50_int8']:.2f}", f"{summary['slides_per_s_int8']:.3f}",
                  f"{summary['images_per_s_int8']:.1f}", f"{summary['tianchi_score_int8']:.3f}")
    return table


def _classify_table(summary: dict) -> Table:
    table = Table(title="leanvision demo: S1 on synthetic retail products (EfficientNet-Lite0, OpenVINO)")
    for column in ("", "top-1 (%)", "top-1 flip TTA (%)", "images/s", "images/s flip TTA"):
        table.add_column(column, justify="right")
    top1, speed = summary["top1"], summary["images_per_s"]
    for precision in ("fp32", "int8"):
        table.add_row(precision.upper(), f"{100 * top1[f'{precision} none']:.2f}",
                      f"{100 * top1[f'{precision} flip']:.2f}", f"{speed[f'{precision} none']:.1f}",
                      f"{speed[f'{precision} flip']:.1f}")
    return table


def _classify_demo(out_dir: Path, quick: bool, seed: int) -> None:
    from leanvision.demo_classify import ClassifyDemoOptions, run_classify_demo

    options = ClassifyDemoOptions.quick(seed) if quick else ClassifyDemoOptions.full(seed)
    with progress_bar("demo (classify)") as update:
        summary = run_classify_demo(out_dir, options, progress=lambda stage, done, total: update(done, total, stage))
    out.print(_classify_table(summary))
    fixres = summary["fixres"]
    if fixres is not None:
        out.print(f"FixRes: top-1 {100 * fixres['top1_train_size']:.2f}% at "
                  f"{'x'.join(map(str, fixres['train_size']))}, {100 * fixres['top1_test_size_before']:.2f}% at "
                  f"{'x'.join(map(str, fixres['test_size']))} before fine-tuning the head, "
                  f"{100 * fixres['top1_test_size_after']:.2f}% after")
    verdict = "within" if summary["drop"] <= summary["max_drop"] else "NOT within"
    out.print(f"INT8 vs FP32: {summary['speedup']:.2f}x images/s, top-1 drop {summary['drop']:.2f} points "
              f"({verdict} the {summary['max_drop']} point budget; "
              f"{plural(len(summary['kept_fp32_layers']), 'layer')} kept FP32)")
    _footer(summary, out_dir)


def _footer(summary: dict, out_dir: Path) -> None:
    out.print(f"machine: {summary['machine']}")
    out.print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items()))
    out.print(f"report: {summary['bench_html']}")
    out.print(f"summary: {out_dir / 'demo_summary.json'}")


def demo(
    quick: bool = typer.Option(False, "--quick", help="A smaller run (~3 minutes): fewer images, smaller slides."),
    out_dir: Path = typer.Option(Path("leanvision-demo"), "--out", help="Working directory for the demo."),
    seed: int = typer.Option(0, "--seed"),
    task: DemoTask = typer.Option(DemoTask.DETECT, "--task",
                                  help="detect: S0 (cytology, slides); classify: S1 (retail products)."),
) -> None:
    """Synthesize a recipe's data, train, export, quantize INT8 with a budget, benchmark FP32 vs INT8."""
    from leanvision.core.resources import keep_freed_memory
    from leanvision.demo import DemoOptions, run_demo

    keep_freed_memory()
    if task is DemoTask.CLASSIFY:
        _classify_demo(out_dir, quick, seed)
        return
    options = DemoOptions.quick(seed) if quick else DemoOptions.full(seed)
    with progress_bar("demo") as update:
        summary = run_demo(out_dir, options, progress=lambda stage, done, total: update(done, total, stage))
    out.print(_table(summary))
    verdict = "within" if summary["drop"] <= summary["max_drop"] else "NOT within"
    out.print(f"INT8 vs FP32: {summary['speedup']:.2f}x slides/s, mAP@0.5 drop {summary['drop']:.2f} points "
              f"({verdict} the {summary['max_drop']} point budget; {plural(len(summary['kept_fp32_layers']), 'layer')} "
              "kept FP32)")
    _footer(summary, out_dir)
