"""Card-driven detection predictor: images -> engine -> `Detections` in image pixels.

    predictor = load_predictor("exported/retinanet")       # model file + model_card.json
    detections = predictor([image_rgb])                     # list[Detections]

Everything the predictor does comes from the model card: input size, resize mode,
channel order and normalisation (preprocess), anchors and box coder (decode), thresholds
and NMS kind (post-process). Post-processing options can be overridden per predictor.
The predictor is pure: it keeps nothing between calls; the engine is its only shared part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.card import CARD_FILENAME, ModelCard, PostprocessSpec
from leanvision.core.config import Config
from leanvision.core.detections import Detections
from leanvision.core.enums import NmsKind, ResizeMode, Task
from leanvision.core.errors import ConfigError, ModelError
from leanvision.core.letterbox import FitTransform
from leanvision.core.protocols import Prepared, RawOutputs
from leanvision.runtime.decode import Candidates, decode_candidates, generate_anchors
from leanvision.runtime.engines import Engine
from leanvision.runtime.nms import SoftKind, matrix_nms, nms, soft_nms
from leanvision.runtime.preprocess import EnginePredictor, ImageInput, check_engine

DEFAULT_OUTPUTS = ("cls_logits", "bbox_regression")
# A model exported with decode + NMS in its graph (`leanvision export --with-nms`) has these
# outputs: boxes (N, K, 4) xyxy input pixels, scores (N, K), labels (N, K), num_detections (N,).
IN_GRAPH_OUTPUTS = ("boxes", "scores", "labels", "num_detections")
# With NMS in the graph these were fixed at export; a higher score threshold and fewer
# detections still apply, as a filter on the graph's output.
_IN_GRAPH_FIXED = ("nms", "iou_threshold", "topk_candidates", "class_agnostic")


@dataclasses.dataclass(frozen=True)
class PostprocessOptions(Config):
    """Detection post-processing: the card's `PostprocessSpec` plus the NMS variants' knobs.

    Attributes:
        score_threshold: candidates need a sigmoid score above this.
        nms: suppression kind.
        iou_threshold: hard NMS drops IoU > this; linear Soft-NMS decays IoU > this.
        topk_candidates: per feature level, candidates kept before NMS (torchvision: 1000).
        max_detections: detections kept per image, best first.
        class_agnostic: suppress across classes.
        soft_sigma: Gaussian Soft-NMS penalty exp(-IoU^2 / sigma); 0.5 in Bodla et al. 2017.
        matrix_kind: Matrix NMS decay function.
        matrix_sigma: Gaussian Matrix NMS exp(-sigma IoU^2); 2.0 in SOLOv2.
        matrix_top_k: candidates Matrix NMS considers (its IoU matrix is matrix_top_k^2).
        post_score_threshold: Soft/Matrix NMS drop boxes whose decayed score is not above
            this; None: `score_threshold`.
    """

    score_threshold: float = 0.05
    nms: NmsKind = NmsKind.HARD
    iou_threshold: float = 0.5
    topk_candidates: int = 1000
    max_detections: int = 300
    class_agnostic: bool = False
    soft_sigma: float = 0.5
    matrix_kind: SoftKind = SoftKind.GAUSSIAN
    matrix_sigma: float = 2.0
    matrix_top_k: int = 1000
    post_score_threshold: float | None = None

    @classmethod
    def from_card(cls, spec: PostprocessSpec, overrides: Mapping[str, Any] | None = None) -> PostprocessOptions:
        """The card's options with `overrides` (key -> value, validated) applied."""
        return cls.from_dict(spec.to_dict() | dict(overrides or {}), where="postprocess")

    @property
    def decayed_threshold(self) -> float:
        return self.score_threshold if self.post_score_threshold is None else self.post_score_threshold


def suppress(candidates: Candidates, options: PostprocessOptions) -> tuple[np.ndarray, np.ndarray]:
    """Run the chosen NMS: (kept indices best first, their final scores), at most max_detections."""
    labels = None if options.class_agnostic else candidates.labels
    boxes, scores = candidates.boxes, candidates.scores
    if options.nms is NmsKind.HARD:
        keep = nms(boxes, scores, options.iou_threshold, labels, max_detections=options.max_detections)
        return keep, scores[keep]
    if options.nms is NmsKind.MATRIX:
        keep, new = matrix_nms(
            boxes, scores, kind=options.matrix_kind, sigma=options.matrix_sigma,
            score_threshold=options.decayed_threshold, top_k=options.matrix_top_k, labels=labels,
        )
        return keep[: options.max_detections], new[: options.max_detections]
    kind = SoftKind.LINEAR if options.nms is NmsKind.SOFT_LINEAR else SoftKind.GAUSSIAN
    return soft_nms(
        boxes, scores, kind=kind, iou_threshold=options.iou_threshold, sigma=options.soft_sigma,
        score_threshold=options.decayed_threshold, max_detections=options.max_detections, labels=labels,
    )


class DetectionPredictor(EnginePredictor):
    """A `StagedPredictor` for anchor-based detectors exported as torchvision's RetinaNet head.

    Args:
        engine: runs the model; outputs `cls_logits` (N, A, C) and `bbox_regression` (N, A, 4)
            (names from the card's `outputs` when given, in that order), or, for a model
            with decode and NMS in its graph, the four `IN_GRAPH_OUTPUTS`; then numpy decode
            and NMS are skipped and only the resize is undone.
        card: the model's card (task detect, with anchors and box_coder).
        overrides: post-processing options replacing the card's, e.g. {"nms": "matrix"}.
            With NMS in the graph only a higher score_threshold and a lower max_detections.

    Raises:
        ModelError: the card does not describe a detector or disagrees with the model.
        ConfigError: an override is unknown or of the wrong type, or the card's resize is
            centre crop.
    """

    def __init__(self, engine: Engine, card: ModelCard, *, overrides: Mapping[str, Any] | None = None) -> None:
        if card.task is not Task.DETECT or card.anchors is None or card.box_coder is None:
            raise ModelError(f"card '{card.name}' is for task {card.task.value}, not a detector", path=engine.path)
        if card.input.resize is ResizeMode.CENTER_CROP:
            raise ConfigError(f"card '{card.name}': a detector cannot use resize 'center_crop' "
                              "(it would miss objects near the image's borders)", path=engine.path.parent)
        self.engine = engine
        self.card = card
        self.options = PostprocessOptions.from_card(card.postprocess, overrides)
        self.nms_in_graph = nms_in_graph(card)
        if self.nms_in_graph:
            _check_in_graph_overrides(self.options, card, engine.path)
        self._input_hw = (card.input.height, card.input.width)
        self._anchors = generate_anchors(card.anchors, self._input_hw)
        self._output_names = _output_names(card)
        check_engine(engine, card, self._output_names)

    def __repr__(self) -> str:
        return f"DetectionPredictor({self.card.name!r}, {self.engine!r}, nms={self.options.nms.value})"

    def __call__(self, images: Sequence[ImageInput]) -> list[Detections]:
        """Detections per image, in that image's pixels (xyxy float32)."""
        return super().__call__(images)

    def postprocess(self, raw: RawOutputs, prepared: Prepared) -> list[Detections]:
        """Decode, suppress and map back to each source image's pixels."""
        if self.nms_in_graph:
            return self._postprocess_in_graph(raw, prepared)
        logits, deltas = (np.asarray(raw[name]) for name in self._output_names)
        self._check_outputs(logits, deltas, len(prepared.sizes))
        return [
            self._detect_one(logits[i], deltas[i], transform, size)
            for i, (transform, size) in enumerate(zip(prepared.transforms, prepared.sizes, strict=True))
        ]

    def _check_outputs(self, logits: np.ndarray, deltas: np.ndarray, batch: int) -> None:
        num_anchors = sum(len(a) for a in self._anchors)
        expected = [(batch, num_anchors, self.card.num_classes), (batch, num_anchors, 4)]
        if [logits.shape, deltas.shape] != expected:
            raise ModelError(
                f"model outputs {list(logits.shape)} and {list(deltas.shape)}, but {CARD_FILENAME} "
                f"(anchors, {self.card.num_classes} classes) implies {[list(e) for e in expected]}",
                path=self.engine.path,
            )

    def _postprocess_in_graph(self, raw: RawOutputs, prepared: Prepared) -> list[Detections]:
        """Outputs already decoded and suppressed: filter by the options, undo the resize."""
        boxes, scores, labels, counts = (np.asarray(raw[name]) for name in IN_GRAPH_OUTPUTS)
        batch = len(prepared.sizes)
        slots = scores.shape[1] if scores.ndim == 2 else -1
        if boxes.shape != (batch, slots, 4) or labels.shape != (batch, slots) or counts.shape != (batch,):
            shapes = [list(a.shape) for a in (boxes, scores, labels, counts)]
            raise ModelError(f"model outputs {shapes}, but {CARD_FILENAME} (NMS in the graph) implies "
                             f"[[{batch}, K, 4], [{batch}, K], [{batch}, K], [{batch}]]", path=self.engine.path)
        results = []
        for i, (transform, size) in enumerate(zip(prepared.transforms, prepared.sizes, strict=True)):
            n = int(counts[i])
            keep = np.flatnonzero(scores[i, :n] > self.options.score_threshold)[: self.options.max_detections]
            dets = Detections(transform.invert_boxes(boxes[i, keep]), scores[i, keep].astype(np.float32),
                              labels[i, keep].astype(np.int64))
            results.append(dets.clip(size[1], size[0]))
        return results

    def _detect_one(
        self, logits: np.ndarray, deltas: np.ndarray, transform: FitTransform, size: tuple[int, int]
    ) -> Detections:
        candidates = decode_candidates(
            logits, deltas, self._anchors, self.card.box_coder,
            score_threshold=self.options.score_threshold, topk=self.options.topk_candidates,
            clip_hw=transform.resized_hw,  # torchvision clips to the image, not its padding
        )
        keep, scores = suppress(candidates, self.options)
        boxes = transform.invert_boxes(candidates.boxes[keep])
        return Detections(boxes, scores, candidates.labels[keep]).clip(size[1], size[0])


def nms_in_graph(card: ModelCard) -> bool:
    """True when the card's outputs are those of a model with decode and NMS in its graph."""
    return tuple(o.name for o in card.outputs) == IN_GRAPH_OUTPUTS


def _check_in_graph_overrides(options: PostprocessOptions, card: ModelCard, path: Path) -> None:
    """ConfigError for an override the graph cannot honour (it decoded and suppressed already)."""
    baked = card.postprocess
    wrong = [name for name in _IN_GRAPH_FIXED if getattr(options, name) != getattr(baked, name)]
    if options.score_threshold < baked.score_threshold:
        wrong.append("score_threshold")
    if options.max_detections > baked.max_detections:
        wrong.append("max_detections")
    if wrong:
        name = wrong[0]
        raise ConfigError(
            f"{name}={getattr(options, name)} cannot apply: this model has decode and NMS in its graph "
            f"(exported with {name}={getattr(baked, name)}); only a higher score_threshold or a lower "
            "max_detections can", path=path,
        )


def _output_names(card: ModelCard) -> tuple[str, ...]:
    if nms_in_graph(card):
        return IN_GRAPH_OUTPUTS
    names = tuple(o.name for o in card.outputs) or DEFAULT_OUTPUTS
    if len(names) != 2:
        raise ModelError(f"card '{card.name}': a detector has 2 outputs (cls_logits, bbox_regression), got {names}")
    return names[0], names[1]
