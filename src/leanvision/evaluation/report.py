"""Benchmark reports: `bench.json`, `bench.md` and a self-contained `bench.html`.

The HTML page embeds its plots as PNG data URIs and its style inline, so it opens from disk
with no server and no network: a summary table, the composite score's ranking, the
accuracy-vs-throughput plot with its Pareto front, and the latency distributions.
Plots use matplotlib's object API (`Figure`), never pyplot's global state.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leanvision.core.io import atomic_write_text
from leanvision.evaluation.benchmark import Cell
from leanvision.evaluation.scores import Entry, Scored, pareto_front

# Metrics shown as percentages (0-1 internally): COCO detection figures.
PERCENT_METRICS = frozenset({"map", "map50", "map75", "ar100", "top1", "top5", "mean_class_accuracy"})


def figure_data_uri(fig) -> str:
    """A matplotlib Figure as a `data:image/png;base64,...` URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def headline(cell: Cell, metric: str) -> float:
    return float(cell.metrics.get(metric, math.nan))


def format_metric(name: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.2f}" if name in PERCENT_METRICS else f"{value:.3f}"


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_rows(cells: Sequence[Cell], metric: str) -> list[dict[str, str]]:
    """One display row per cell: the columns of the Markdown and HTML tables."""
    rows = []
    for c in cells:
        engine = c.engine_precision if c.engine_precision == c.precision_hint else f"{c.precision_hint}->{c.engine_precision}"
        rows.append({
            "model": c.model if getattr(c, "tta", "none") == "none" else f"{c.model} ({c.tta} TTA)",
            "weights": c.model_precision, "engine": c.backend, "compute": engine,
            "batch": str(c.batch), "requests": str(c.requests),
            metric + (" (%)" if metric in PERCENT_METRICS else ""): format_metric(metric, headline(c, metric)),
            "latency ms (median / p90)": f"{_fmt(c.latency_ms_median)} / {_fmt(c.latency_ms_p90)}",
            "images/s": _fmt(c.images_per_s), "slides/s": _fmt(c.slides_per_s, 3),
            "peak RSS MB": _fmt(c.peak_rss_mb, 0), "model MB": _fmt(c.model_mb),
        })
    return rows


def _tta(cell: Cell) -> str:
    """A plot label's TTA suffix ("" without TTA)."""
    tta = getattr(cell, "tta", "none")
    return "" if tta == "none" else f"/{tta}"


def markdown_table(rows: Sequence[dict[str, str]]) -> str:
    if not rows:
        return "(no rows)\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def html_table(rows: Sequence[dict[str, str]], *, table_id: str = "") -> str:
    if not rows:
        return "<p>(no rows)</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in columns) + "</tr>" for r in rows)
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def score_rows(scored: Sequence[Scored]) -> list[dict[str, str]]:
    rows = []
    for s in sorted(scored, key=lambda s: (s.rank == 0, s.rank)):
        details = ", ".join(f"{k} {v:.3g}" for k, v in s.details.items())
        rows.append({"rank": str(s.rank or "-"), "cell": s.name, "score": f"{s.score:.4g}", "details": details})
    return rows


def pareto_plot(cells: Sequence[Cell], metric: str, *, higher_is_better: bool):
    """Accuracy vs throughput, one point per cell, the Pareto front drawn through its cells."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    points = [(c.images_per_s, headline(c, metric), c) for c in cells if not math.isnan(headline(c, metric))]
    sign = 1 if higher_is_better else -1
    entries = [Entry(c.name, {"acc": sign * acc, "thr": thr}) for thr, acc, c in points]
    front = {s.name for s in pareto_front(entries, accuracy="acc", throughput="thr") if s.rank} if entries else set()
    for thr, acc, c in points:
        on_front = c.name in front
        ax.scatter(thr, acc, s=60 if on_front else 30, marker="o" if on_front else "x",
                   color="#c44e52" if on_front else "#4c72b0")
        ax.annotate(f"{c.model}/{c.backend}/b{c.batch}r{c.requests}{_tta(c)}", (thr, acc), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    line = sorted((thr, acc) for thr, acc, c in points if c.name in front)
    if len(line) > 1:
        ax.plot(*zip(*line, strict=True), color="#c44e52", linewidth=1, label="Pareto front")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("throughput, images/s")
    ax.set_ylabel(metric + (" (0-1)" if metric in PERCENT_METRICS else ""))
    ax.set_title(f"{metric} vs throughput ({'higher' if higher_is_better else 'lower'} is better)")
    ax.grid(alpha=0.3)
    return fig


def latency_plot(cells: Sequence[Cell]):
    """Box plots of every cell's per-call latency samples."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 0.35 * max(4, len(cells)) + 1))
    ax = fig.add_subplot()
    ax.boxplot([c.latency_ms for c in cells], orientation="horizontal", showfliers=True)
    ax.set_yticks(range(1, len(cells) + 1), [f"{c.model}/{c.backend}/{c.engine_precision}/b{c.batch}r{c.requests}{_tta(c)}" for c in cells],
                  fontsize=7)
    ax.set_xlabel("latency per call, ms (one request in flight)")
    ax.set_title("latency distributions")
    ax.grid(axis="x", alpha=0.3)
    return fig


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: right; }
th { background: #eef; } td:first-child, th:first-child { text-align: left; }
.meta { color: #555; font-size: 0.9em; } img { max-width: 100%; }
"""


def render_html(title: str, meta: dict[str, Any], sections: Sequence[tuple[str, str]]) -> str:
    """A standalone page: `sections` are (heading, HTML body) pairs."""
    meta_html = "<br>".join(f"<b>{html.escape(k)}</b>: {html.escape(str(v))}" for k, v in meta.items())
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='meta'>{meta_html}</p>{body}</body></html>\n")


def write_bench_report(
    cells: Sequence[Cell],
    out: Path,
    *,
    metric: str,
    higher_is_better: bool,
    meta: dict[str, Any],
    scored: Sequence[Scored] = (),
    score_name: str = "",
) -> dict[str, Path]:
    """Write bench.json, bench.md and bench.html into `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(cells, metric)
    paths = {"json": out / "bench.json", "md": out / "bench.md", "html": out / "bench.html"}
    data = {"meta": meta, "metric": metric, "higher_is_better": higher_is_better,
            "cells": [dataclasses.asdict(c) | {"name": c.name} for c in cells],
            "score": {"name": score_name, "ranking": [dataclasses.asdict(s) for s in scored]} if scored else None}
    atomic_write_text(paths["json"], json.dumps(data, indent=2, default=str) + "\n")
    md = ["# leanvision bench\n", *(f"- {k}: {v}" for k, v in meta.items()), "", "## Summary", "", markdown_table(rows)]
    if scored:
        md += [f"## Score: {score_name}", "", markdown_table(score_rows(scored))]
    atomic_write_text(paths["md"], "\n".join(md))
    sections = [("Summary", html_table(rows, table_id="summary"))]
    if scored:
        sections.append((f"Score: {score_name}", html_table(score_rows(scored), table_id="score")))
    sections.append(("Accuracy vs throughput",
                     f"<img alt='pareto' src='{figure_data_uri(pareto_plot(cells, metric, higher_is_better=higher_is_better))}'>"))
    sections.append(("Latency", f"<img alt='latency' src='{figure_data_uri(latency_plot(cells))}'>"))
    atomic_write_text(paths["html"], render_html("leanvision bench", meta, sections))
    return paths


def machine_meta() -> dict[str, str]:
    """The machine as reports record it: CPU, cores, ISA, versions, date."""
    import datetime
    import platform

    from leanvision import __version__
    from leanvision.runtime.hardware import detect_cpu

    cpu = detect_cpu()
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": cpu.summary(), "python": platform.python_version(), "leanvision": __version__}
