"""Checkpoint files: one `torch.save`d dict, written atomically, loadable with weights_only.

Layout (format "leanvision.checkpoint", version 1)::

    model       state dict of the trained model
    optimizer   optimizer state (momentum buffers, param groups)
    trainer     {"epochs_done", "iteration", "max_epochs", "hooks": {hook class name: state}}
                (the EMA weights are hooks["EmaHook"]["module"]; the LR is a function of
                "iteration"; the best val mAP@0.5 is hooks["CheckpointHook"])
    rng         torch, numpy and Python RNG states
    card        ModelCard.to_dict(), metrics measured at this epoch
    config      the resolved TrainConfig.to_dict()

Everything is tensors and plain Python data, so `torch.load(weights_only=True)` reads it:
loading a checkpoint never runs pickled code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leanvision.core import ConfigError, ModelCard, ModelError
from leanvision.core.io import atomic_path
from leanvision.models.weights import load_tensors

FORMAT = "leanvision.checkpoint"
VERSION = 1
LAST, BEST = "last.pt", "best.pt"


def capture_rng() -> dict[str, Any]:
    """The torch, numpy and Python global RNG states as tensors and plain data."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {**numpy_state["state"], "key": state["numpy"]["state"]["key"].numpy().astype(np.uint32)}
    np.random.set_state(numpy_state)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write `payload` (plus format and version) atomically: readers never see half a file."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file, or a run directory (its `last.pt`)."""
    path = Path(path)
    if path.is_dir():
        path = path / LAST
    if not path.is_file():
        raise ModelError("checkpoint not found", path=path)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; ModelError if missing or corrupt."""
    path = resolve_checkpoint(path)
    data = load_tensors(path, "corrupt or unreadable checkpoint")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError("not a leanvision training checkpoint", path=path)
    if data.get("version", 0) > VERSION:
        raise ModelError(f"checkpoint version {data['version']} is newer than this leanvision reads", path=path)
    return data


def card_of(checkpoint: dict[str, Any], *, path: str | os.PathLike[str] | None = None) -> ModelCard:
    try:
        return ModelCard.from_dict(checkpoint["card"])
    except (KeyError, ConfigError) as exc:
        raise ModelError(f"checkpoint has no valid model card: {exc}", path=path) from None


def inference_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights to predict with: the EMA's if the run kept one, else the model's."""
    ema = checkpoint.get("trainer", {}).get("hooks", {}).get("EmaHook")
    return ema["module"] if ema else checkpoint["model"]


def model_from_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, ModelCard]:
    """Rebuild the model a checkpoint was trained as, in eval mode, with its inference weights.

    Raises:
        ModelError: missing, corrupt or inconsistent checkpoint.
    """
    from leanvision.models import create_model

    path = resolve_checkpoint(path)
    checkpoint = load_checkpoint(path)
    card = card_of(checkpoint, path=path)
    overrides = checkpoint.get("config", {}).get("model", {}).get("overrides", {})
    try:
        model = create_model(card.name, num_classes=card.num_classes, **overrides)
        model.load_state_dict(inference_state(checkpoint))
    except (KeyError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"checkpoint does not fit model {card.name!r}: {first[:200]}", path=path) from None
    return model.eval(), card
