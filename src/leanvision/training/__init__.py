"""Training: a small fit loop with hooks (checkpoint, EMA, AMP, LR schedule, logging) and losses (torch world).

`train(config)` runs a recipe (`load_config(path, overrides)`); `Trainer` and `HookBase`
are the loop itself; `model_from_checkpoint` rebuilds a trained model for evaluation or export.
"""

from leanvision.training.checkpoint import load_checkpoint, model_from_checkpoint
from leanvision.training.config import TrainConfig
from leanvision.training.loop import HookBase, NonFiniteLossError, Trainer
from leanvision.training.recipe import load_config
from leanvision.training.run import TrainResult, resume_config, train

__all__ = [
    "HookBase",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "load_checkpoint",
    "load_config",
    "model_from_checkpoint",
    "resume_config",
    "train",
]
