"""What this CPU offers INT8 and bf16, read from the machine (never assumed).

INT8 pays off in proportion to the dot-product instructions the CPU has: AMX tiles
(`amx_int8`) > AVX-512 VNNI (`avx512_vnni`) / AVX-VNNI (`avx_vnni`) > plain AVX2 or AVX-512,
where u8 x s8 products go through `vpmaddubsw` + `vpmaddwd` (two instructions and a
saturating 16-bit intermediate). S0's -1.71 mAP for a ~2x speed-up was measured on VNNI; the
issue's targets on AMX. On AVX2 alone the speed-up is much smaller, and the report says so
with the measured figure. bf16 compute needs `avx512_bf16` or `amx_bf16`; OpenVINO lists
"BF16" in the CPU plugin's OPTIMIZATION_CAPABILITIES exactly when it can use it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "amx_tile")


@dataclasses.dataclass(frozen=True)
class CpuInfo:
    """The CPU as read from /proc/cpuinfo and the OpenVINO CPU plugin.

    Attributes:
        model: CPU model name ("" if unknown).
        cores: logical CPUs available to this process.
        flags: the ISA flags of interest present (subset of `ISA_FLAGS`).
        openvino_capabilities: the CPU plugin's OPTIMIZATION_CAPABILITIES (e.g. FP32, INT8,
            BIN), None when OpenVINO is not installed.
    """

    model: str
    cores: int
    flags: frozenset[str]
    openvino_capabilities: tuple[str, ...] | None = None

    @property
    def vnni(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni"} & self.flags)

    @property
    def amx(self) -> bool:
        return "amx_int8" in self.flags

    @property
    def bf16(self) -> bool:
        """bf16 compute available: OpenVINO's word when known, else the ISA flags."""
        if self.openvino_capabilities is not None:
            return "BF16" in self.openvino_capabilities
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def int8_path(self) -> str:
        """The best INT8 dot-product path of this CPU, e.g. "AMX" or "AVX2 (no VNNI)"."""
        if self.amx:
            return "AMX"
        if "avx512_vnni" in self.flags:
            return "AVX-512 VNNI"
        if "avx_vnni" in self.flags:
            return "AVX-VNNI"
        if "avx512f" in self.flags:
            return "AVX-512 (no VNNI)"
        if "avx2" in self.flags:
            return "AVX2 (no VNNI)"
        return "no AVX2"

    def summary(self) -> str:
        flags = " ".join(f for f in ISA_FLAGS if f in self.flags) or "none of interest"
        caps = "unknown" if self.openvino_capabilities is None else ", ".join(self.openvino_capabilities)
        return (f"{self.model or 'unknown CPU'}, {self.cores} cores; INT8 path {self.int8_path}; "
                f"bf16 {'yes' if self.bf16 else 'no'}; flags: {flags}; OpenVINO capabilities: {caps}")

    def to_dict(self) -> dict:
        return {"model": self.model, "cores": self.cores, "flags": sorted(self.flags),
                "openvino_capabilities": None if self.openvino_capabilities is None else list(self.openvino_capabilities),
                "vnni": self.vnni, "amx": self.amx, "bf16": self.bf16, "int8_path": self.int8_path}


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, ISA flags of interest) from the text of /proc/cpuinfo (first CPU)."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split()) & frozenset(ISA_FLAGS)
    return model, flags


def openvino_capabilities() -> tuple[str, ...] | None:
    """The OpenVINO CPU plugin's OPTIMIZATION_CAPABILITIES, or None without OpenVINO."""
    try:
        import openvino as ov
    except ImportError:
        return None
    return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def detect_cpu(cpuinfo: Path = CPUINFO) -> CpuInfo:
    """Read this machine's CPU (flags from `cpuinfo`, capabilities from OpenVINO)."""
    try:
        model, flags = parse_cpuinfo(cpuinfo.read_text())
    except OSError:  # not Linux: no flags known, OpenVINO's capabilities still tell bf16
        model, flags = "", frozenset()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return CpuInfo(model, cores, flags, openvino_capabilities())
