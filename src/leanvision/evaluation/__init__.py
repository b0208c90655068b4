"""Torch-free evaluation: metrics, accuracy x speed benchmarks, competition scores and reports."""
