"""Torch-free deployment: inference engines (ONNX Runtime, OpenVINO) and card-driven predictors. Never imports torch."""
