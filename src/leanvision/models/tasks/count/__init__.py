"""Counting models (CSRNet family): density maps at 1/8 resolution, count = sum of the map."""

from leanvision.models.tasks.count.csrnet import (
    CSRNet,
    CsrnetOptions,
    build_csrnet,
    dilated_backend,
)

__all__ = ["CSRNet", "CsrnetOptions", "build_csrnet", "dilated_backend"]
