"""CPU ISA detection: parsed from /proc/cpuinfo text and OpenVINO's capabilities."""

from __future__ import annotations

from pathlib import Path

import pytest

from leanvision.runtime.hardware import CpuInfo, detect_cpu, parse_cpuinfo

SAMPLE = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
processor\t: 1
model name\t: other
flags\t\t: fpu
"""


def test_parse_reads_the_first_cpu_and_keeps_isa_flags_of_interest():
    model, flags = parse_cpuinfo(SAMPLE)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}


@pytest.mark.parametrize(("flags", "path", "vnni"), [
    ({"avx2"}, "AVX2 (no VNNI)", False),
    ({"avx2", "avx_vnni"}, "AVX-VNNI", True),
    ({"avx2", "avx512f"}, "AVX-512 (no VNNI)", False),
    ({"avx2", "avx512f", "avx512_vnni"}, "AVX-512 VNNI", True),
    ({"avx512_vnni", "amx_int8"}, "AMX", True),
    (set(), "no AVX2", False),
])
def test_int8_path(flags, path, vnni):
    cpu = CpuInfo("x", 2, frozenset(flags))
    assert cpu.int8_path == path and cpu.vnni is vnni


def test_bf16_prefers_openvinos_word_over_flags():
    assert CpuInfo("x", 2, frozenset({"amx_bf16"})).bf16
    assert not CpuInfo("x", 2, frozenset({"amx_bf16"}), ("FP32", "INT8")).bf16
    assert CpuInfo("x", 2, frozenset(), ("FP32", "BF16", "INT8")).bf16


def test_this_machine_is_read_not_assumed():
    cpu = detect_cpu()
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = parse_cpuinfo(text)[1]
    assert cpu.flags == flags
    assert cpu.vnni == bool({"avx512_vnni", "avx_vnni"} & flags)
    assert cpu.openvino_capabilities is not None and "FP32" in cpu.openvino_capabilities
    assert cpu.bf16 == ("BF16" in cpu.openvino_capabilities)
    assert cpu.to_dict()["int8_path"] in cpu.summary()
