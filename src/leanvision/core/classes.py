"""`ClassProbs`: a classifier's scores for one image, with its probabilities and top classes.

The softmax is written here (four lines of numpy) rather than taken from scipy: `core`
imports only numpy, and the max-subtracted form in float64 cannot overflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TOP_IN_JSON = 5  # classes `to_dict` lists


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities from logits along `axis` (float32); the max is subtracted first, so
    large logits cannot overflow `exp`."""
    shifted = np.asarray(logits, np.float64)
    shifted = np.exp(shifted - shifted.max(axis=axis, keepdims=True))
    return (shifted / shifted.sum(axis=axis, keepdims=True)).astype(np.float32)


def ranked(scores: np.ndarray, k: int) -> np.ndarray:
    """The indices of the `k` highest `scores` along the last axis, highest first; ties go to
    the lower index (as `np.argmax` does), so rank 0 is always the argmax."""
    return np.argsort(-np.asarray(scores), axis=-1, kind="stable")[..., :k]


@dataclass(frozen=True, eq=False)
class ClassProbs:
    """One image's class scores.

    Attributes:
        logits: (C,) float32, the model's scores before softmax.
        class_names: label index -> name, or None; `name` and `to_dict` use it.
        probs: (C,) float32, softmax of `logits` (computed, not passed).
    """

    logits: np.ndarray
    class_names: tuple[str, ...] | None = None
    probs: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        logits = np.asarray(self.logits, np.float32)
        if logits.ndim != 1 or logits.size == 0:
            raise ValueError(f"class logits must be a non-empty (C,) vector, got shape {logits.shape}")
        if not np.isfinite(logits).all():
            raise ValueError("class logits must be finite (got NaN or inf)")
        names = None if self.class_names is None else tuple(self.class_names)
        if names is not None and len(names) != logits.size:
            raise ValueError(f"{len(names)} class names for {logits.size} class logits")
        object.__setattr__(self, "logits", logits)
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "probs", softmax(logits))

    @property
    def num_classes(self) -> int:
        return int(self.logits.size)

    @property
    def index(self) -> int:
        """The predicted class (highest logit; the lowest index among equals)."""
        return int(np.argmax(self.logits))

    @property
    def score(self) -> float:
        """The predicted class's probability."""
        return float(self.probs[self.index])

    @property
    def name(self) -> str | None:
        """The predicted class's name; None without `class_names`."""
        return self._name_of(self.index)

    def topk(self, k: int) -> list[tuple[int, float]]:
        """The `k` most probable classes (fewer if there are fewer) as (index, probability),
        most probable first; equal logits in index order (ranked by logits, so the first
        is always `index`, whatever float32 rounding does to nearly equal probabilities)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        return [(int(i), float(self.probs[i])) for i in ranked(self.logits, k)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the prediction and the top 5 classes with names and probabilities."""
        return {"index": self.index, "name": self.name, "score": self.score,
                "top5": [{"index": i, "name": self._name_of(i), "prob": p} for i, p in self.topk(TOP_IN_JSON)]}

    def _name_of(self, index: int) -> str | None:
        return None if self.class_names is None else self.class_names[index]

    def __repr__(self) -> str:
        shown = f"{self.index} ({self.name!r})" if self.class_names is not None else str(self.index)
        return f"ClassProbs(class={shown}, score={self.score:.3f}, classes={self.num_classes})"

