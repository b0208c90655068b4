"""Training hooks, one concern each (see `training.loop.HookBase` for when each is called)."""

from leanvision.training.hooks.amp import AmpHook, resolve_autocast
from leanvision.training.hooks.checkpoint import CheckpointHook
from leanvision.training.hooks.ema import EmaHook, ModelEMA
from leanvision.training.hooks.evaluation import EvalHook
from leanvision.training.hooks.grad_clip import GradClipHook
from leanvision.training.hooks.lr_schedule import LrScheduleHook, warmup_cosine_lr
from leanvision.training.hooks.metrics_log import MetricsLogHook
from leanvision.training.hooks.nan_guard import NonFiniteLossHook
from leanvision.training.hooks.progress import ProgressHook
from leanvision.training.hooks.time_budget import TimeBudgetHook

__all__ = [
    "AmpHook",
    "CheckpointHook",
    "EmaHook",
    "EvalHook",
    "GradClipHook",
    "LrScheduleHook",
    "MetricsLogHook",
    "ModelEMA",
    "NonFiniteLossHook",
    "ProgressHook",
    "TimeBudgetHook",
    "resolve_autocast",
    "warmup_cosine_lr",
]
