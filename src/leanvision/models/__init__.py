"""Models: the registry, backbones, necks, heads and task models, and per-part profiling (torch world).

Importing this package is cheap: torch and the model code load when a model is created.
"""

from leanvision.models.registry import (
    ModelEntry,
    create_model,
    list_models,
    register_model,
    unregister_model,
)

__all__ = ["ModelEntry", "create_model", "list_models", "register_model", "unregister_model"]
