"""A slim RetinaNet with random but lively weights, saved as a minimal training checkpoint.

torchvision's initialisation (std 0.01, prior 0.01) makes a random RetinaNet score ~0.01
everywhere: no detection above 0.05, and a parity check would compare empty lists. The
weights here are spread (Kaiming convolutions, BatchNorm statistics as after training,
classification bias chosen so a few hundred anchors pass the threshold), so the exported
model has real detections to agree on, boxes and biases in every convolution.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from leanvision.models import create_model
from leanvision.training.checkpoint import save_checkpoint

NAME = "retinanet_mbv2_slim"
CLASSES = ("cell", "debris")
INPUT_HW = (256, 256)


def lively_slim(seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model(NAME, num_classes=len(CLASSES), **overrides)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.normal_(module.bias, std=0.1)
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.0)
                module.bias.normal_(0.0, 0.1)
        head = model.head
        head.regression_head.bbox_reg.weight.mul_(0.05)
        head.classification_head.cls_logits.weight.mul_(0.3)
        head.classification_head.cls_logits.bias.fill_(-4.0)
    return model.eval()


def save_slim_checkpoint(path: Path, model: nn.Module, *, input_hw=INPUT_HW, overrides=None) -> Path:
    """A checkpoint as the training checkpoint writer saves one: model, card, config."""
    card = model.card(class_names=CLASSES, input_size=input_hw).replace(metrics={"val_map50": 0.5})
    config = {"model": {"name": NAME, "overrides": dict(overrides or {})}}
    save_checkpoint(path, {"model": model.state_dict(), "card": card.to_dict(), "config": config})
    return path
