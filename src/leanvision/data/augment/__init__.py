"""Box-aware augmentations (numpy + cv2, no torch), S0's among them.

Every op is `op(image, targets, rng) -> (image, targets)` with an HxWx3 uint8 RGB image,
`core.Detections` targets (xyxy float32 pixels) and a `np.random.Generator` as the only
source of randomness. `build_augmentation(recipe["augment"], negatives=...)` builds a
`Compose` from a recipe's list; see `compose.OPS` for the op names.

| family      | ops                                             | module         |
|-------------|-------------------------------------------------|----------------|
| geometric   | OnlineCropResize, RandomFlip, Resize            | geometric.py   |
| paste       | RandomShift, ReplaceBackground (+ StainNorm)    | paste.py       |
| stain       | Reinhard, Macenko (used by ReplaceBackground)   | stain.py       |
| photometric | PhotometricJitter                               | photometric.py |
"""

from leanvision.data.augment.common import (
    Augmentation,
    NegativeSource,
    read_rgb,
    sample_rng,
)
from leanvision.data.augment.compose import OPS, Compose, build_augmentation, build_step
from leanvision.data.augment.geometric import (
    OnlineCropResize,
    RandomFlip,
    Resize,
    crop_resize,
    fit_to_size,
    flip,
)
from leanvision.data.augment.paste import (
    ImagePool,
    RandomShift,
    ReplaceBackground,
    ReplaceBackgroundConfig,
    negative_pool,
)
from leanvision.data.augment.photometric import PhotometricJitter
from leanvision.data.augment.stain import (
    StainNorm,
    StainReference,
    fit_macenko,
    lab_stats,
    macenko,
    reinhard,
    stain_normalizer,
)

__all__ = [
    "OPS",
    "Augmentation",
    "Compose",
    "ImagePool",
    "NegativeSource",
    "OnlineCropResize",
    "PhotometricJitter",
    "RandomFlip",
    "RandomShift",
    "ReplaceBackground",
    "ReplaceBackgroundConfig",
    "Resize",
    "StainNorm",
    "StainReference",
    "build_augmentation",
    "build_step",
    "crop_resize",
    "fit_macenko",
    "fit_to_size",
    "flip",
    "lab_stats",
    "macenko",
    "negative_pool",
    "read_rgb",
    "reinhard",
    "sample_rng",
    "stain_normalizer",
]
