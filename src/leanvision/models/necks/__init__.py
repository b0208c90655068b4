"""Necks: feature pyramids over backbone outputs."""
