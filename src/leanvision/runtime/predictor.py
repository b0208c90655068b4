"""Card-driven predictors: images -> engine -> `Detections` (or, for a counting card,
`runtime.count.CountPredictor`'s `DensityMap`s) in image pixels.

    predictor = load_predictor("exported/retinanet")       # model file + model_card.json
    detections = predictor([image_rgb])                     # list[Detections]

Everything the predictor does comes from the model card: input size, resize mode,
channel order and normalisation (preprocess), anchors and box coder (decode), thresholds
and NMS kind (post-process). Post-processing options can be overridden per predictor.
The predictor is pure: it keeps nothing between calls; the engine is its only shared part.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leanvision.core.card import CARD_FILENAME, InputSpec, ModelCard, PostprocessSpec
from leanvision.core.config import Config
from leanvision.core.detections import Detections
from leanvision.core.enums import NmsKind, ResizeMode, Task
from leanvision.core.errors import ConfigError, DataError, ModelError
from leanvision.core.letterbox import FitTransform, fit
from leanvision.core.protocols import Prepared, RawOutputs
from leanvision.runtime.decode import Candidates, decode_candidates, generate_anchors
from leanvision.runtime.engines import Backend, Engine, EngineOptions, PrecisionHint, open_engine
from leanvision.runtime.engines.base import as_backend
from leanvision.runtime.nms import SoftKind, matrix_nms, nms, soft_nms

ImageInput = np.ndarray | str | os.PathLike[str]
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


def read_image(item: ImageInput, index: int) -> np.ndarray:
    """An HxWx3 uint8 RGB array from an array or an image file, or DataError."""
    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8 or 0 in item.shape:
            raise DataError(f"image {index}: expected an HxWx3 uint8 RGB array, got {item.dtype} {item.shape}")
        return item
    import cv2

    path = Path(item)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None:
        reason = "cannot decode image" if path.is_file() else "image file not found"
        raise DataError(reason, path=path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class DetectionPredictor:
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
        ConfigError: an override is unknown or of the wrong type.
    """

    def __init__(self, engine: Engine, card: ModelCard, *, overrides: Mapping[str, Any] | None = None) -> None:
        if card.task is not Task.DETECT or card.anchors is None or card.box_coder is None:
            raise ModelError(f"card '{card.name}' is for task {card.task.value}, not a detector", path=engine.path)
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

    @property
    def max_in_flight(self) -> int:
        return self.engine.num_requests

    def close(self) -> None:
        """Close the engine (finishing in-flight requests)."""
        self.engine.close()

    def __enter__(self) -> DetectionPredictor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DetectionPredictor({self.card.name!r}, {self.engine!r}, nms={self.options.nms.value})"

    def __call__(self, images: Sequence[ImageInput]) -> list[Detections]:
        """Detections per image, in that image's pixels (xyxy float32)."""
        if len(images) == 0:
            return []
        prepared = self.preprocess(images)
        return self.postprocess(self.engine.infer(prepared.batch), prepared)

    def preprocess(self, images: Sequence[ImageInput], *, at_input_scale: bool = False) -> Prepared:
        """Fit each image to the input (card's resize mode), reorder channels, normalise.

        Args:
            images: RGB images or paths.
            at_input_scale: the images are tiles a large-image pipeline already read at the
                card's scale (windows of `card.input.window` px at the input size): they are
                not scaled again, only padded if smaller.

        Returns:
            `Prepared` with batch (N, 3, H, W) float32 (uint8 when the card's dtype says the
            model normalises in-graph), source sizes and `FitTransform`s.
        """
        return prepare_images(images, self.card.input, at_input_scale=at_input_scale)

    def submit(self, prepared: Prepared, on_done: Callable[[RawOutputs], None]) -> None:
        self.engine.submit(prepared.batch, on_done)

    def wait_all(self) -> None:
        self.engine.wait_all()

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


def prepare_images(images: Sequence[ImageInput], spec: InputSpec, *, at_input_scale: bool = False) -> Prepared:
    """Fit each image to the card's input (its resize mode), reorder channels, normalise.

    What every predictor's `preprocess` does, whatever the task.

    Returns:
        `Prepared` with batch (N, 3, H, W) float32 (uint8 when `spec.dtype` says the model
        normalises in-graph), source sizes (height, width) and `FitTransform`s.
    """
    input_hw = (spec.height, spec.width)
    arrays = [read_image(item, i) for i, item in enumerate(images)]
    # A tile read at the card's scale must not be scaled again: with S0's scale 0.5 an 800 px
    # tile of a 1600 px window would shrink to 400 px and its detections map back 2x too far.
    scale = 1.0 if at_input_scale and spec.resize is ResizeMode.SCALE else spec.scale
    transforms = tuple(fit(a.shape[:2], input_hw, spec.resize, scale) for a in arrays)
    batch = np.full((len(arrays), *input_hw, 3), spec.pad_value, np.uint8)
    for slot, image, transform in zip(batch, arrays, transforms, strict=True):
        _paste_resized(slot, image, transform)
    if spec.color == "BGR":
        batch = batch[..., ::-1]
    sizes = tuple((int(a.shape[0]), int(a.shape[1])) for a in arrays)
    return Prepared(_to_model_input(batch, spec), sizes, transforms)


def _to_model_input(batch: np.ndarray, spec: InputSpec) -> np.ndarray:
    chw = batch.transpose(0, 3, 1, 2)  # reorder the uint8 pixels: 4x less to move than floats
    if spec.dtype == "uint8":
        return np.ascontiguousarray(chw)
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    out = np.empty(chw.shape, np.float32)
    np.subtract(chw, mean[:, None, None], out=out, dtype=np.float32)
    out /= std[:, None, None]
    return out


def check_engine(engine: Engine, card: ModelCard, output_names: Sequence[str]) -> None:
    """ModelError unless the engine's input size is the card's and it has `output_names`."""
    input_hw = (card.input.height, card.input.width)
    shape = engine.input_shape
    model_hw = tuple(shape[2:]) if len(shape) == 4 else ()
    if len(model_hw) != 2 or any(m is not None and m != c for m, c in zip(model_hw, input_hw, strict=True)):
        shown = "x".join("?" if d is None else str(d) for d in model_hw) or str(list(shape))
        raise ModelError(
            f"{CARD_FILENAME} says input {input_hw[0]}x{input_hw[1]} but {engine.path.name} takes {shown}",
            path=engine.path.parent,
        )
    missing = [n for n in output_names if n not in engine.output_names]
    if missing:
        raise ModelError(
            f"model has no output {missing[0]!r} named by {CARD_FILENAME} (outputs: {', '.join(engine.output_names)})",
            path=engine.path,
        )


def _paste_resized(slot: np.ndarray, image: np.ndarray, transform: FitTransform) -> None:
    import cv2

    height, width = transform.resized_hw
    if image.shape[:2] == (height, width):
        slot[:height, :width] = image
    else:
        slot[:height, :width] = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


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


def find_model_file(model_dir: Path, backend: Backend | None) -> Path:
    """The model file in `model_dir`: `model.xml` (OpenVINO IR) if present, else `model.onnx`.

    With backend="onnxruntime" only `model.onnx` qualifies.
    """
    names = ("model.onnx",) if backend is Backend.ONNXRUNTIME else ("model.xml", "model.onnx")
    for name in names:
        if (model_dir / name).is_file():
            return model_dir / name
    raise ModelError(f"no model file in the model directory (expected {' or '.join(names)})", path=model_dir)


def _predictor_for(engine: Engine, card: ModelCard, overrides: Mapping[str, Any] | None) -> Any:
    """The predictor of the card's task around `engine`."""
    if card.task is Task.COUNT:
        from leanvision.runtime.count import CountPredictor

        if overrides:
            raise ConfigError(f"post-processing overrides {sorted(overrides)} apply to detectors; "
                              f"'{card.name}' is a counting model", path=engine.path)
        return CountPredictor(engine, card)
    return DetectionPredictor(engine, card, overrides=overrides)


def fallback_precision(card: ModelCard) -> PrecisionHint:
    """The precision `leanvision quantize --fallback` chose for the layers it kept out of INT8
    (bf16 only where the CPU runs it), recorded in the card; FP32 for any other model."""
    try:
        facts = json.loads(card.provenance.get("quantization", "{}"))
        return PrecisionHint(facts.get("fallback_precision", "fp32"))
    except (ValueError, AttributeError):
        return PrecisionHint.FP32


def load_predictor(
    model_dir: str | os.PathLike[str],
    *,
    backend: Backend | str | None = None,
    options: EngineOptions | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """Open an exported model directory (model file + `model_card.json`) as the predictor of
    its card's task: a `DetectionPredictor` (detect) or a `runtime.count.CountPredictor` (count).

    Raises:
        ModelError: missing or corrupt model or card, or a card that disagrees with the model.
        ConfigError: an unknown backend or override (counting models take no overrides).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelError("model directory not found", path=model_dir)
    card = ModelCard.load(model_dir)
    chosen = as_backend(backend)
    model_file = find_model_file(model_dir, chosen)
    if options is None and model_file.suffix == ".xml":
        options = EngineOptions(precision=fallback_precision(card))
    engine = open_engine(model_file, backend=chosen, options=options)
    try:
        return _predictor_for(engine, card, overrides)
    except (ModelError, ConfigError):
        engine.close()
        raise
