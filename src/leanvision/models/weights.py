"""Load weights from local files only: torchvision/timm state dicts and leanvision checkpoints.

Nothing downloads. A missing, unreadable or mismatched file is a `ModelError` naming the
file and the first offending keys, raised before any weight is copied.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from leanvision.core.errors import ModelError

StateDict = dict[str, torch.Tensor]

# How many offending keys an error message names; the rest are counted.
_SHOWN_KEYS = 3


def load_tensors(path: str | os.PathLike[str], what: str) -> Any:
    """`torch.load(weights_only=True)` of a local file, or a one-line ModelError: `what: reason`.

    torch's own messages run to several lines and advise `weights_only=False`, which would
    let the file run code: they are replaced by what is wrong with the file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notices, one per load
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for bad files
        raise ModelError(f"{what}: {_load_failure(exc)}", path=path) from None


def _load_failure(exc: BaseException) -> str:
    """What a failed `torch.load` says about the file, in plain words."""
    text = str(exc)
    if any(s in text for s in ("invalid load key", "Unsupported operand", "could not find MARK", "stack underflow")):
        return "the file is not a PyTorch file"
    if "Weights only load failed" in text or "WeightsUnpickler" in text:
        return "the file holds Python objects, not only tensors, and is not loaded (that could run code)"
    if "central directory" in text or "PytorchStreamReader" in text or isinstance(exc, EOFError):
        return "the file is truncated or corrupt"
    return "the file is not a PyTorch file"


def read_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """Read a state dict saved with `torch.save`, or the `"model"` entry of a checkpoint.

    Only tensors and plain containers are unpickled (`weights_only=True`): a weights file
    cannot run code.
    """
    if not os.path.isfile(path):
        raise ModelError("weights file not found", path=path)
    data = load_tensors(path, "cannot read weights")
    if isinstance(data, Mapping) and isinstance(data.get("model"), Mapping):
        data = data["model"]  # a leanvision checkpoint
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelError("not a state dict (expected a mapping of names to tensors)", path=path)
    return dict(data)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    more = f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
    return f"{shown}{more}"


def mismatches(module: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Describe how `state` fails to fit `module`: missing, unexpected, wrong-shape keys.

    `num_batches_tracked` counters are optional both ways: FrozenBatchNorm2d has none and
    torchvision's own loaders drop them.
    """
    expected = module.state_dict()
    optional = ("num_batches_tracked",)
    missing = [k for k in expected if k not in state and not k.endswith(optional)]
    unexpected = [k for k in state if k not in expected and not k.endswith(optional)]
    shapes = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch {_listing(shapes)}")
    return problems


def load_checked(
    module: nn.Module, state: Mapping[str, torch.Tensor], *, path: str | os.PathLike[str], what: str
) -> None:
    """Copy `state` into `module` if every key and shape fits, else raise ModelError.

    Args:
        module: the receiving module.
        state: tensors keyed like `module.state_dict()`.
        path: the file `state` came from, for the message.
        what: what is being loaded, e.g. "retinanet_mbv2_slim backbone".
    """
    problems = mismatches(module, state)
    if problems:
        raise ModelError(f"weights do not fit the {what}: {'; '.join(problems)}", path=path)
    fitting = {k: v for k, v in state.items() if k in module.state_dict()}
    module.load_state_dict(fitting, strict=False)


def nest_torchvision_fpn(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename torchvision detection keys (`backbone.fpn.*`) to leanvision's (`fpn.*`).

    torchvision nests the FPN inside the backbone (`backbone.body`, `backbone.fpn`);
    leanvision models keep it a sibling so profiling and layer exclusion see three parts.
    """
    prefix = "backbone.fpn."
    return {("fpn." + k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def load_model_weights(model: nn.Module, path: str | os.PathLike[str], *, what: str) -> None:
    """Load a full-model state dict or leanvision checkpoint file into `model`."""
    state = read_state_dict(path)
    if any(k.startswith("backbone.fpn.") for k in state) and hasattr(model, "fpn"):
        state = nest_torchvision_fpn(state)
    load_checked(model, state, path=path, what=what)
