"""`quant_report.json`, `.md` and `.html`: what quantization cost and bought, measured.

The JSON is the whole record. The Markdown and HTML are rendered from one list of blocks
(headings, paragraphs, tables, lists, the chart), so they always say the same thing; the
HTML is self-contained (inline CSS, the chart as a base64 PNG) and opens from disk. The
chart is drawn with matplotlib's object API (no pyplot state, safe in threads).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from leanvision.compression.quantize.sensitivity import Sensitivity
from leanvision.core.io import atomic_write_bytes, atomic_write_text

REPORT_JSON, REPORT_MD, REPORT_HTML, CHART_PNG = "quant_report.json", "quant_report.md", "quant_report.html", "quant_sensitivity.png"
GROUP_COLOURS = {"backbone": "#4C72B0", "fpn": "#DD8452", "head": "#55A868"}
OTHER_COLOUR = "#8C8C8C"

Block = tuple[Any, ...]  # ("h2", text) | ("p", text) | ("warn", text) | ("table", headers, rows) | ("list", items) | ("chart",)


def sensitivity_chart(sensitivity: Sensitivity, top: int) -> bytes:
    """PNG bytes: the `top` most sensitive layers' gain as horizontal bars, coloured by group."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    shown = list(sensitivity.layers[:top])[::-1]  # most sensitive at the top
    figure = Figure(figsize=(9, 1.2 + 0.28 * len(shown)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    colours = [GROUP_COLOURS.get(s.group, OTHER_COLOUR) for s in shown]
    axes.barh(range(len(shown)), [s.gain for s in shown], color=colours)
    axes.set_yticks(range(len(shown)), [s.layer for s in shown], fontsize=7)
    axes.set_xlabel("output noise/signal removed by keeping the layer FP32 (higher = more sensitive)")
    axes.set_title(f"INT8 sensitivity: top {len(shown)} of {len(sensitivity.layers)} layers "
                   f"(all INT8: SQNR {sensitivity.sqnr_all_db:.1f} dB)", fontsize=10)
    groups = sorted({s.group for s in shown})
    axes.legend(handles=[Patch(color=GROUP_COLOURS.get(g, OTHER_COLOUR), label=g or "other") for g in groups],
                loc="lower right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _metric(report: Mapping[str, Any]) -> tuple[str, str, str]:
    """(key, label, drop unit) of the report's metric."""
    metric = report["metric"]
    return metric["key"], metric["label"], metric["unit"]


def _model_rows(models: Sequence[Mapping[str, Any]], key: str) -> list[list[str]]:
    return [[m["label"], _fmt(m.get(key)), _fmt(m.get("drop")), _fmt(m.get("images_per_s")),
             "-" if m.get("speedup") is None else f"{m['speedup']:.2f}x", m.get("precision", "-"),
             str(m.get("fp32_layers", "-"))] for m in models]


def blocks(report: Mapping[str, Any], *, chart: bool) -> list[Block]:
    """The report's content, in order, for either renderer."""
    key, label, unit = _metric(report)
    better = "higher" if report["metric"]["higher_is_better"] else "lower"
    out: list[Block] = [("h1", f"INT8 quantization report: {report['model_dir']}")]
    out += [("warn", w) for w in report["warnings"]]
    cpu = report["cpu"]
    out += [("p", f"Backend {report['backend']}; CPU {cpu['model'] or 'unknown'} ({cpu['cores']} cores), "
                  f"INT8 path {cpu['int8_path']}, bf16 {'available' if cpu['bf16'] else 'not available'}, "
                  f"OpenVINO capabilities {', '.join(cpu['openvino_capabilities'] or ['unknown'])}."),
            ("h2", "Accuracy and throughput"),
            ("p", f"{label} on the validation set ({better} is better), drop in {unit} against FP32 (positive: "
                  "worse); throughput measured in one run, side by side, same engine options and same image."),
            ("table", ["model", label, f"drop ({unit})", "images/s", "vs FP32", "float precision", "FP32 layers"],
             _model_rows(report["models"], key))]
    out += _budget_blocks(report)
    out += [("h2", f"Layers kept out of INT8 ({len(report['fp32_layers'])})"),
            ("list", report["fp32_layers"] or ["none: every layer is INT8"])]
    if report.get("fp32_other_nodes"):
        out += [("p", "Other operations left unquantized (named by --keep-fp32): "
                      + ", ".join(report["fp32_other_nodes"]))]
    out += _sensitivity_blocks(report, chart)
    out += _calibration_blocks(report)
    return out


def _budget_blocks(report: Mapping[str, Any]) -> list[Block]:
    budget = report.get("budget")
    if not budget:
        return []
    state = "reached" if budget["reached"] else "NOT reached"
    _, label, unit = _metric(report)
    rows = [[str(c["kept"]), c["how"], _fmt(c["score"]), _fmt(c["drop"])] for c in budget["candidates"]]
    return [("h2", f"Accuracy budget: {budget['budget']:g} {unit} of {label}, {state}"),
            ("table", ["FP32 layers tried", "how", label, f"drop ({unit})"], rows),
            ("p", f"Chosen: {budget['best']['kept']} layers ({budget['best']['how']}), drop "
                  f"{budget['best']['drop']:.2f} {unit}.")]


def _sensitivity_blocks(report: Mapping[str, Any], chart: bool) -> list[Block]:
    sens = report.get("sensitivity")
    if not sens:
        return []
    rows = [[str(i + 1), s["layer"], s["group"] or "-", f"{s['gain']:.3g}", _fmt(s["sqnr_db"])]
            for i, s in enumerate(sens["layers"][: report["options"]["budget"]["chart_layers"]])]
    all_db = "inf" if sens["sqnr_all_db"] is None else f"{sens['sqnr_all_db']:.1f}"
    text = (f"Each layer alone kept FP32 in the quantized model, scored by the raw outputs' error against "
            f"FP32 on {sens['images']} calibration images (all INT8: SQNR {all_db} dB; {sens['seconds']:.1f} s).")
    return [("h2", "Per-layer sensitivity"), ("p", text), *([("chart",)] if chart else []),
            ("table", ["rank", "layer", "group", "gain", "SQNR kept FP32 (dB)"], rows)]


def _calibration_blocks(report: Mapping[str, Any]) -> list[Block]:
    cal = report["calibration"]
    out: list[Block] = [
        ("h2", "Calibration"),
        ("p", f"{cal['images']} images chosen by '{cal['selection']}' (seed {cal['seed']}) from {cal['files']} files "
              f"of {cal['source']}; one image per NNCF item, so subset_size = {cal['subset_size']}; "
              f"{len(cal['skipped'])} unreadable files skipped, {cal['grayscale']} grayscale images converted."),
    ]
    if report.get("sweep"):
        key, label, unit = _metric(report)
        rows = [[str(s["images"]), _fmt(s[key]), _fmt(s["drop"])] for s in report["sweep"]]
        out += [("h3", "Calibration-size sweep (all layers INT8)"),
                ("table", ["images", label, f"drop ({unit})"], rows)]
    return out


def _markdown(items: Sequence[Block]) -> str:
    lines: list[str] = []
    for item in items:
        kind = item[0]
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + item[1], ""]
        elif kind == "p":
            lines += [item[1], ""]
        elif kind == "warn":
            lines += [f"> **Warning:** {item[1]}", ""]
        elif kind == "list":
            lines += [f"- `{entry}`" for entry in item[1]] + [""]
        elif kind == "chart":
            lines += [f"![per-layer sensitivity]({CHART_PNG})", ""]
        elif kind == "table":
            headers, rows = item[1], item[2]
            lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    return "\n".join(lines)


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
        "th{background:#f0f0f0}.warn{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px}"
        "code{font-size:12px}img{max-width:100%}")


def _html(items: Sequence[Block], chart_png: bytes | None) -> str:
    esc = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>INT8 quantization report</title>"
             f"<style>{_CSS}</style></head><body>"]
    for item in items:
        kind = item[0]
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{esc(item[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{esc(item[1])}</p>")
        elif kind == "warn":
            parts.append(f"<p class='warn'><b>Warning:</b> {esc(item[1])}</p>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li><code>{esc(e)}</code></li>" for e in item[1]) + "</ul>")
        elif kind == "chart" and chart_png is not None:
            data = base64.b64encode(chart_png).decode("ascii")
            parts.append(f"<img alt='per-layer sensitivity' src='data:image/png;base64,{data}'>")
        elif kind == "table":
            head = "".join(f"<th>{esc(h)}</th>" for h in item[1])
            body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in item[2])
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(out_dir: Path, report: Mapping[str, Any], sensitivity: Sensitivity | None) -> list[Path]:
    """Write the JSON, Markdown and HTML reports (and the chart PNG the Markdown shows)."""
    chart = sensitivity_chart(sensitivity, report["options"]["budget"]["chart_layers"]) if sensitivity and sensitivity.layers else None
    items = blocks(report, chart=chart is not None)
    atomic_write_text(out_dir / REPORT_JSON, json.dumps(report, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / REPORT_MD, _markdown(items))
    atomic_write_text(out_dir / REPORT_HTML, _html(items, chart))
    written = [out_dir / REPORT_JSON, out_dir / REPORT_MD, out_dir / REPORT_HTML]
    if chart is not None:
        atomic_write_bytes(out_dir / CHART_PNG, chart)
        written.append(out_dir / CHART_PNG)
    return written
