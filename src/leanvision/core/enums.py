"""Enums shared by both worlds. Values are the strings used in YAML, JSON and the CLI."""

from __future__ import annotations

import enum


class Task(enum.StrEnum):
    DETECT = "detect"
    CLASSIFY = "classify"
    COUNT = "count"
    SEGMENT = "segment"


class Precision(enum.StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"
    MIXED = "mixed"  # INT8 with some layers kept in FP32 or BF16


class ResizeMode(enum.StrEnum):
    STRETCH = "stretch"  # resize to the input size, aspect ratio not kept
    LETTERBOX = "letterbox"  # keep aspect ratio, pad right/bottom (S1's structure retention)
    SCALE = "scale"  # fixed scale (card.input.scale), pad right/bottom: S0's 1600 px -> 800 px


class NmsKind(enum.StrEnum):
    HARD = "nms"
    SOFT_LINEAR = "soft_linear"
    SOFT_GAUSSIAN = "soft_gaussian"
    MATRIX = "matrix"
