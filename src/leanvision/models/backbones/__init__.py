"""Backbones: feature extractors returning C3, C4, C5 (strides 8, 16, 32)."""
