"""Torch-free large-image inference: readers, tile grids, the parallel pipeline and merging. Takes any Predictor; never imports torch or runtime."""
