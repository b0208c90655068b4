"""Export: ONNX and OpenVINO export with model cards and torch-vs-runtime parity checks (torch world)."""
