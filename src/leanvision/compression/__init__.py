"""Compression: post-training quantization with an accuracy budget, pruning, distillation (torch world)."""
