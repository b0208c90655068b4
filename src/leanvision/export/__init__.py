"""Export: a checkpoint's network to ONNX / OpenVINO IR with its model card, checked against torch.

    from leanvision.export import export_model
    result = export_model("runs/s0", format="openvino", out="exported/s0")

Node names in the exported graphs are module paths (`backbone.body.3.conv.0.0/Conv`) and
the card's `layer_groups` holds one regex per model part (backbone, fpn, head) matching
them, in the ONNX graph and in the IR. Importing this package loads neither torch nor ONNX.
"""

from leanvision.export.api import ExportFormat, ExportResult, export_model
from leanvision.export.parity import FP32_PARITY, ParityReport, ParityRun, ParityTolerance

__all__ = [
    "FP32_PARITY",
    "ExportFormat",
    "ExportResult",
    "ParityReport",
    "ParityRun",
    "ParityTolerance",
    "export_model",
]
