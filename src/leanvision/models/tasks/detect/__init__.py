"""Detection models (RetinaNet family) and their torch-side decoding."""

from leanvision.models.tasks.detect.postprocess import decode_detections
from leanvision.models.tasks.detect.retinanet import (
    RetinaNetDetector,
    RetinaNetOptions,
    build_retinanet,
)

__all__ = ["RetinaNetDetector", "RetinaNetOptions", "build_retinanet", "decode_detections"]
