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
    CENTER_CROP = "center_crop"  # keep aspect ratio, cover the input, cut the centre (classifiers)


class SamplerKind(enum.StrEnum):
    """How training images are drawn each epoch (classification's long-tail samplers)."""

    UNIFORM = "uniform"  # each image once per epoch
    CLASS_BALANCED = "class_balanced"  # every class equally often
    SQRT = "sqrt"  # a class in proportion to the square root of its image count


class NmsKind(enum.StrEnum):
    HARD = "nms"
    SOFT_LINEAR = "soft_linear"
    SOFT_GAUSSIAN = "soft_gaussian"
    MATRIX = "matrix"
