"""What export and its parity check need from each task (the `export` entries of
`data.tasks.TORCH_TASKS`).

- detect: the network body's `cls_logits` / `bbox_regression` (or decode + NMS in the graph
  with `--with-nms`); torch's reference is `model.detect` (torchvision decode + NMS); parity
  matches detections in image pixels.
- count: the `density` map; torch's reference is `model.predict`; parity compares counts.
- classify: the `logits`; torch's reference is the model's logits; parity holds them to the
  raw tolerance and reports top-1 agreement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from leanvision.core.card import ModelCard, OutputSpec, PostprocessSpec
from leanvision.core.density import DensityMap
from leanvision.core.detections import Detections
from leanvision.core.errors import ModelError
from leanvision.core.protocols import Prepared
from leanvision.export.card import expected_anchors, expected_density_shape
from leanvision.export.parity import ParityReport, ParityTolerance, detection_counts

ResultsFn = Callable[[np.ndarray, Sequence[tuple[int, int]] | None], list[Any]]


class ExportTask(Protocol):
    """A task's export pieces.

    Attributes:
        outputs: the exported body's outputs, in order.
        nms_in_graph: whether `--with-nms` (decode and NMS in the graph) applies.
    """

    outputs: tuple[OutputSpec, ...]
    nms_in_graph: bool

    def check_outputs(self, shapes: Mapping[str, Sequence[Any]], card: ModelCard) -> None:
        """ModelError unless the graph's output shapes (batch axis first) are what the card implies."""
        ...

    def torch_results(self, model: Any, spec: PostprocessSpec) -> ResultsFn:
        """(normalised batch, content sizes) -> torch's results in model-input pixels."""
        ...

    def to_image(self, results: list[Any], prepared: Prepared, card: ModelCard) -> list[Any]:
        """Model-input-pixel results mapped to each source image, as the runtime maps its own."""
        ...

    def compare(self, expected: list[Any], got: list[Any], predictor: Any, tolerance: ParityTolerance) -> dict[str, Any]:
        """`ParityRun` fields comparing torch's image-pixel results with the runtime's."""
        ...

    def disagreement(self, report: ParityReport, tolerance: ParityTolerance) -> str:
        """The task's part of a failed parity check's one-line message."""
        ...


def _tensor(batch: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(batch))


class DetectExport:
    """detect: the body's logits and deltas; detections matched in image pixels."""

    outputs = (OutputSpec("cls_logits", "N,A,C"), OutputSpec("bbox_regression", "N,A,4"))
    nms_in_graph = True

    def check_outputs(self, shapes: Mapping[str, Sequence[Any]], card: ModelCard) -> None:
        anchors, classes = expected_anchors(card), card.num_classes
        for name, tail in {"cls_logits": (anchors, classes), "bbox_regression": (anchors, 4)}.items():
            if tuple(shapes[name][1:]) != tail:
                raise ModelError(f"exported output {name} has shape {list(shapes[name])} but the card's anchors "
                                 f"and classes imply [N, {tail[0]}, {tail[1]}]")

    def torch_results(self, model: Any, spec: PostprocessSpec) -> ResultsFn:
        import torch

        def detect(batch: np.ndarray, content: Sequence[tuple[int, int]] | None = None) -> list[Detections]:
            return model.detect(torch.from_numpy(np.ascontiguousarray(batch)), score_threshold=spec.score_threshold,
                                iou_threshold=spec.iou_threshold, max_detections=spec.max_detections,
                                image_sizes=content)

        return detect

    def to_image(self, results: list[Any], prepared: Prepared, card: ModelCard) -> list[Any]:
        return [Detections(t.invert_boxes(d.boxes), d.scores, d.labels).clip(size[1], size[0])
                for d, t, size in zip(results, prepared.transforms, prepared.sizes, strict=True)]

    def compare(self, expected: list[Any], got: list[Any], predictor: Any, tolerance: ParityTolerance) -> dict[str, Any]:
        options = predictor.options
        counts = detection_counts(expected, got, tolerance, threshold=options.score_threshold,
                                  max_detections=options.max_detections)
        return dict(zip(("torch_detections", "runtime_detections", "matched_torch", "matched_runtime"), counts,
                        strict=True))

    def disagreement(self, report: ParityReport, tolerance: ParityTolerance) -> str:
        return f"detection agreement {report.detection_agreement:.3f} (need {tolerance.min_agreement})"


class CountExport:
    """count: the density map; counts compared."""

    outputs = (OutputSpec("density", "N,1,H,W"),)  # objects per cell, count = sum
    nms_in_graph = False

    def check_outputs(self, shapes: Mapping[str, Sequence[Any]], card: ModelCard) -> None:
        name, tail = card.outputs[0].name, expected_density_shape(card)
        if tuple(shapes[name][1:]) != tail:
            raise ModelError(f"exported output {name} has shape {list(shapes[name])} but the card's input and "
                             f"output stride imply [N, {', '.join(map(str, tail))}]")

    def torch_results(self, model: Any, spec: PostprocessSpec) -> ResultsFn:
        return lambda batch, content=None: model.predict(_tensor(batch))

    def to_image(self, results: list[Any], prepared: Prepared, card: ModelCard) -> list[Any]:
        return [DensityMap.from_model_output(m.density, t, card.output_stride)
                for m, t in zip(results, prepared.transforms, strict=True)]

    def compare(self, expected: list[Any], got: list[Any], predictor: Any, tolerance: ParityTolerance) -> dict[str, Any]:
        # The largest |runtime count - torch count| / max(|torch count|, 1) over the images.
        worst = max((abs(g.count - r.count) / max(abs(r.count), 1.0) for r, g in zip(expected, got, strict=True)),
                    default=0.0)
        return {"count_rel_diff": worst}

    def disagreement(self, report: ParityReport, tolerance: ParityTolerance) -> str:
        return f"relative count difference {report.count_rel_diff:.3g} (allowed {tolerance.count_rtol:g})"


class ClassifyExport:
    """classify: the logits (N, C); top-1 classes compared."""

    outputs = (OutputSpec("logits", "N,C"),)
    nms_in_graph = False

    def check_outputs(self, shapes: Mapping[str, Sequence[Any]], card: ModelCard) -> None:
        name = card.outputs[0].name
        if tuple(shapes[name][1:]) != (card.num_classes,):
            raise ModelError(f"exported output {name} has shape {list(shapes[name])} but the card has "
                             f"{card.num_classes} classes: [N, {card.num_classes}]")

    def torch_results(self, model: Any, spec: PostprocessSpec) -> ResultsFn:
        return lambda batch, content=None: model.predict(_tensor(batch))

    def to_image(self, results: list[Any], prepared: Prepared, card: ModelCard) -> list[Any]:
        return results  # class scores do not depend on where the image sat in the input

    def compare(self, expected: list[Any], got: list[Any], predictor: Any, tolerance: ParityTolerance) -> dict[str, Any]:
        same = sum(e.index == g.index for e, g in zip(expected, got, strict=True))
        return {"top1_agreement": same / max(len(expected), 1)}

    def disagreement(self, report: ParityReport, tolerance: ParityTolerance) -> str:
        return f"top-1 agreement {report.top1_agreement:.3f}"
