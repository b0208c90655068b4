"""Heads: task outputs over neck features."""
