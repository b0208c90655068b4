"""Where INT8 gains and where it does not: OpenVINO per-layer time of an FP32 IR and its INT8 IR.

Both models are compiled alike (INFERENCE_PRECISION_HINT=f32, LATENCY, one stream, `--threads`
threads, PERF_COUNT on) and run alternately, one inference each in turn, so a busy machine
slows both alike. Each layer's time is its median over the runs (robust to preemption).
Layers are grouped by kind (stem, depthwise, 1x1 / dense conv, head FC, other); the INT8
model's layers whose kernel is not an integer one (exec type without I8/U8) are listed.

    .venv/bin/python benchmarks/ov_int8_layers.py exported/s1/model.xml exported/s1-int8/model.xml
"""

from __future__ import annotations

import argparse
import collections
import re

import numpy as np


def _kind(name: str, node_type: str) -> str:
    if node_type == "GroupConvolution":
        return "depthwise conv"
    if "stem" in name or "conv1/" in name:
        return "first conv (+ input reorder)"
    if node_type == "Convolution":
        return "conv (1x1 / dense)"
    if "FullyConnected" in node_type or node_type == "MatMul":
        return "head FC"
    return "other"


def profile(paths: list[str], *, runs: int, threads: int, size: int) -> list[dict]:
    import openvino as ov

    core = ov.Core()
    models = []
    for path in paths:
        compiled = core.compile_model(core.read_model(path), "CPU", {
            "PERF_COUNT": True, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1})
        request = compiled.create_infer_request()
        batch = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
        for _ in range(10):
            request.infer({0: batch})
        models.append((request, batch, collections.defaultdict(list)))
    for _ in range(runs):
        for request, batch, times in models:
            request.infer({0: batch})
            for info in request.get_profiling_info():
                if info.status == info.Status.EXECUTED:
                    key = (info.node_name.removesuffix("/WithoutBiases"), info.node_type, info.exec_type)
                    times[key].append(info.real_time.total_seconds() * 1e6)
    return [{key: float(np.median(values)) for key, values in times.items()} for _, _, times in models]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fp32")
    parser.add_argument("int8")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    from leanvision.runtime.hardware import detect_cpu

    cpu = detect_cpu()
    print(f"machine: {cpu.summary()}")
    fp32, int8 = profile([args.fp32, args.int8], runs=args.runs, threads=args.threads, size=args.size)
    groups: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for column, layers in enumerate((fp32, int8)):
        for (name, node_type, _), us in layers.items():
            groups[_kind(name, node_type)][column] += us
    total = [sum(fp32.values()), sum(int8.values())]
    print(f"per-layer medians, {args.threads} thread(s), batch 1, {args.size}px, {args.runs} alternated runs")
    print("| layers | FP32 us | INT8 us | FP32/INT8 | share of INT8 time |")
    print("|---|---|---|---|---|")
    for kind, (a, b) in sorted(groups.items(), key=lambda item: -item[1][0]):
        ratio = f"{a / b:.2f}x" if b else "-"
        print(f"| {kind} | {a:.0f} | {b:.0f} | {ratio} | {100 * b / total[1]:.1f} % |")
    print(f"| all | {total[0]:.0f} | {total[1]:.0f} | {total[0] / total[1]:.2f}x | 100 % |")
    floating = sorted({(n, e) for (n, _, e) in int8 if not re.search("I8|U8", e)})
    print("INT8 model, layers on floating-point kernels:", ", ".join(f"{n} ({e})" for n, e in floating) or "none")


if __name__ == "__main__":
    main()
