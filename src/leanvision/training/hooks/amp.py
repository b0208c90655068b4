"""bf16 autocast on CPU, only where the CPU computes bf16 natively.

Without AVX512-BF16 or AMX, bf16 convolutions are emulated through fp32 with extra
conversions. Measured here (AMD EPYC, AVX2 only, `benchmarks/train_speed.py`): a slim
RetinaNet training step took 22.1 s under bf16 autocast vs 2.2 s in fp32 (800 px, batch 1,
2 threads), and 11.8 s vs 0.87 s at 256 px, batch 4, 1 thread: 10-14x slower. So `amp: auto`
turns autocast on only when the ISA has native bf16, and logs the decision.
"""

from __future__ import annotations

import logging

import torch

from leanvision.training.config import AmpMode
from leanvision.training.loop import HookBase

logger = logging.getLogger(__name__)

_NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def native_bf16_flags() -> list[str]:
    """The CPU features that give native bf16 matmul/convolution here (may be empty)."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is None:  # older torch: ask oneDNN directly
        supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)()
        return ["onednn_bf16"] if supported else []
    capabilities = get_capabilities()
    return [flag for flag in _NATIVE_BF16_FLAGS if capabilities.get(flag)]


def resolve_autocast(mode: AmpMode) -> tuple[torch.dtype | None, str]:
    """(autocast dtype or None for fp32, a one-line reason naming the ISA)."""
    isa = torch.backends.cpu.get_cpu_capability()
    native = native_bf16_flags()
    where = f"CPU {isa}, native bf16: {', '.join(native) if native else 'none'}"
    if mode is AmpMode.OFF:
        return None, f"amp off -> fp32 ({where})"
    if mode is AmpMode.BF16:
        slow = "" if native else "; emulated here, expect slower steps"
        return torch.bfloat16, f"amp bf16 (forced) -> bf16 autocast ({where}{slow})"
    if native:
        return torch.bfloat16, f"amp auto -> bf16 autocast ({where})"
    return None, f"amp auto -> fp32 ({where}: bf16 would be emulated and slower)"


class AmpHook(HookBase):
    """Chooses the step's autocast dtype once, before training, and logs why."""

    def __init__(self, mode: AmpMode) -> None:
        self.mode = mode
        self.decision = ""

    def before_train(self) -> None:
        dtype, self.decision = resolve_autocast(self.mode)
        self.trainer.autocast_dtype = dtype
        logger.info(self.decision)
