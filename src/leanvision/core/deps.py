"""Optional dependencies, imported where used and named by the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from leanvision.core.errors import MissingExtraError


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import `module` or raise MissingExtraError naming `leanvision[extra]`.

    Args:
        module: dotted module name, e.g. "openvino".
        extra: the leanvision extra that installs it, e.g. "deploy".
        purpose: what needs it, for the message, e.g. "the OpenVINO engine".
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # Only a missing top-level package is "not installed"; a broken install must surface.
        if exc.name is not None and module.split(".")[0] == exc.name.split(".")[0]:
            raise MissingExtraError(module, extra, purpose=purpose) from exc
        raise
