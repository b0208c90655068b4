"""Datasets: formats, synthetic generators, checks and statistics (and, with torch, loaders)."""
