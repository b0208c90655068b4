"""A toy fourth task, defined only here: a 2-class "brightness" classifier (dark / bright).

It is the proof that the task tables work: `register()` adds its rows to the torch-free table
(`core.tasks.DEPLOY_TASKS`: predictor) and the torch table (`data.tasks.TORCH_TASKS`: training
adapter, labelled set, export pieces) and its model to the registry, and the task then trains,
exports and predicts through leanvision's own `train`, `export_model` and `load_predictor`
without any edit of src/. It borrows the `segment` task value (which has no rows in src/ yet)
and reads its sets as ImageFolder (`read_imagefolder`), whatever the value's own formats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch import nn

from leanvision.core import ModelCard, Task
from leanvision.core.card import InputSpec, OutputSpec
from leanvision.core.errors import ConfigError, DataError
from leanvision.core.protocols import Prepared, RawOutputs
from leanvision.core.tasks import DEPLOY_TASKS, DeployTask, register_deploy_task
from leanvision.data.formats.classification import read_imagefolder
from leanvision.data.labelled import LabelledSet
from leanvision.data.tasks import TORCH_TASKS, TorchTask, register_torch_task
from leanvision.models.registry import register_model, unregister_model
from leanvision.runtime.engines import Engine
from leanvision.runtime.preprocess import EnginePredictor, check_engine
from leanvision.training.tasks.base import Validation

TASK = Task.SEGMENT
MODEL = "toy_brightness"
HERE = "tests.tasks.toy_brightness"
CLASSES = ("bright", "dark")  # ImageFolder: sorted folder names


def write_set(root: Path, per_class: int, *, seed: int, size: int = 24) -> Path:
    """An ImageFolder set: `dark/` images of mean ~60, `bright/` of mean ~190, with noise."""
    rng = np.random.default_rng(seed)
    for name, level in (("dark", 60), ("bright", 190)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = np.clip(rng.normal(level, 25, (size, size + 8, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / name / f"{i}.png"), image)
    return root


# -- the model (registered under MODEL) ---------------------------------------------------


class BrightnessNet(nn.Module):
    """conv 3x3 -> ReLU -> global mean -> linear: (N, 3, H, W) -> logits (N, classes)."""

    task: ClassVar[Task] = TASK
    parts: ClassVar[Mapping[str, str]] = {"body": "body", "head": "head"}

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.name = MODEL
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images).mean(dim=(2, 3)))

    def compute_loss(self, images: torch.Tensor, targets: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        labels = torch.tensor([int(t["label"]) for t in targets])
        return {"cross_entropy": nn.functional.cross_entropy(self(images), labels)}

    def card(self, *, class_names: Sequence[str], input_size: tuple[int, int] = (32, 32),
             mean: Sequence[float] | None = None, std: Sequence[float] | None = None, resize: Any = "stretch",
             scale: float | None = None) -> ModelCard:
        spec = InputSpec(height=input_size[0], width=input_size[1], mean=tuple(mean or (128.0,) * 3),
                         std=tuple(std or (64.0,) * 3), resize=resize, scale=scale)
        return ModelCard(name=MODEL, task=TASK, class_names=tuple(class_names), input=spec,
                         outputs=(OutputSpec("logits", "N,C"),))


def build(num_classes: int, weights_backbone: Any = None, **overrides: Any) -> BrightnessNet:
    if overrides:
        raise ConfigError(f"{MODEL} takes no options, got {sorted(overrides)}")
    return BrightnessNet(num_classes)


# -- the torch world's row ----------------------------------------------------------------


class _Images(torch.utils.data.Dataset):
    def __init__(self, dataset: Any, input_hw: tuple[int, int]) -> None:
        self.files, self.labels, self.input_hw = dataset.image_files(), [label for _, label in dataset.items], input_hw

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, int], int]:
        image = cv2.cvtColor(cv2.imread(str(self.files[index])), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, self.input_hw[::-1], interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), {"label": self.labels[index]}, index


def _collate(items: list[tuple]) -> tuple[torch.Tensor, list[dict[str, int]], torch.Tensor]:
    images, targets, indices = zip(*items, strict=True)
    return torch.stack(images), list(targets), torch.tensor(indices)


def _accuracy(model: nn.Module, dataset: Any, card: ModelCard) -> float:
    loader = torch.utils.data.DataLoader(_Images(dataset, (card.input.height, card.input.width)), batch_size=8,
                                         collate_fn=_collate)
    mean, std = torch.tensor(card.input.mean).view(1, 3, 1, 1), torch.tensor(card.input.std).view(1, 3, 1, 1)
    right = 0
    model.eval()
    with torch.no_grad():
        for images, targets, _ in loader:
            predicted = model((images.float() - mean) / std).argmax(1)
            right += sum(int(p) == t["label"] for p, t in zip(predicted, targets, strict=True))
    return right / len(loader.dataset)


class BrightnessAdapter:
    """The training adapter (`training.tasks.TaskAdapter`)."""

    task = TASK
    metric = "accuracy"
    higher_is_better = True
    metric_label = "accuracy"
    shown = ("accuracy",)
    card_metrics = ("accuracy",)

    def check_augment(self, steps: Sequence[Mapping[str, Any]]) -> None:
        if steps:
            raise ConfigError(f"{MODEL} has no augmentation ops")

    def load_data(self, data: Any, *, workers: int) -> Any:
        from leanvision.training.data import TrainData

        train = read_imagefolder(data.train)
        val = read_imagefolder(data.val) if data.val is not None else None
        return TrainData(train, val, tuple(train.classes), [])

    def model_overrides(self, model: nn.Module, options: Any, data: Any, data_options: Any,
                        augment: Any) -> dict[str, Any]:
        return {}

    def train_loader(self, data: Any, card: ModelCard, model: nn.Module, *, augment: Any, loader: Any,
                     seed: int) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(_Images(data.train, (card.input.height, card.input.width)),
                                           batch_size=loader.batch_size, shuffle=True, collate_fn=_collate,
                                           generator=torch.Generator().manual_seed(seed))

    def evaluator(self, val: Any, card: ModelCard, *, batch_size: int) -> Callable[[nn.Module], dict[str, float]]:
        return lambda model: {"accuracy": _accuracy(model, val, card)}

    def validate(self, model: nn.Module, labelled: LabelledSet, card: ModelCard, *, batch_size: int,
                 progress: Any, out_dir: Path) -> Validation:
        accuracy = _accuracy(model, labelled.dataset, card)
        return Validation((f"{labelled.path}: accuracy {accuracy:.3f}",), {"accuracy": accuracy})


def _accuracy_scorer(truth: Sequence[int], sizes: Sequence[tuple[int, int]]) -> Callable[[Sequence[int]], dict]:
    return lambda predictions: {"accuracy": float(np.mean([p == t for p, t in zip(predictions, truth, strict=True)]))}


def read_labelled(path: Path, class_names: Sequence[str] | None = None) -> LabelledSet:
    dataset = read_imagefolder(path)
    if class_names is not None and tuple(dataset.classes) != tuple(class_names):
        raise DataError(f"classes {list(dataset.classes)} differ from the model's {list(class_names)}", path=path)
    truth = tuple(label for _, label in dataset.items)
    return LabelledSet(path, tuple(dataset.image_files()), truth, ((0, 0),) * len(truth), tuple(dataset.issues),
                       dataset, "accuracy", True, len(truth), _accuracy_scorer)


class BrightnessExport:
    """Export pieces (`export.tasks.ExportTask`): logits out; parity compares the raw logits."""

    outputs = (OutputSpec("logits", "N,C"),)
    nms_in_graph = False

    def check_outputs(self, shapes: Mapping[str, Sequence[Any]], card: ModelCard) -> None:
        assert tuple(shapes["logits"][1:]) == (card.num_classes,), shapes

    def torch_results(self, model: nn.Module, spec: Any) -> Callable:
        def classify(batch: np.ndarray, content: Any = None) -> list[int]:
            with torch.no_grad():
                return [int(c) for c in model(torch.from_numpy(np.ascontiguousarray(batch))).argmax(1)]

        return classify

    def to_image(self, results: list[Any], prepared: Prepared, card: ModelCard) -> list[Any]:
        return results

    def compare(self, expected: list[Any], got: list[Any], predictor: Any, tolerance: Any) -> dict[str, Any]:
        assert expected == got, (expected, got)
        return {}

    def disagreement(self, report: Any, tolerance: Any) -> str:
        return "logits differ"


# -- the torch-free world's row -----------------------------------------------------------


class BrightnessPredictor(EnginePredictor):
    """A `StagedPredictor`: images -> the class index of each."""

    def __init__(self, engine: Engine, card: ModelCard, *, overrides: Mapping[str, Any] | None = None) -> None:
        self.engine, self.card = engine, card
        check_engine(engine, card, ("logits",))

    def postprocess(self, raw: RawOutputs, prepared: Prepared) -> list[int]:
        return [int(c) for c in np.asarray(raw["logits"]).argmax(1)]


@contextmanager
def registered() -> Iterator[None]:
    """The toy task's rows and model in the tables for the duration, removed after."""
    assert TASK not in DEPLOY_TASKS and TASK not in TORCH_TASKS, "segment has rows in src/ now: pick another task value"
    register_deploy_task(DeployTask(TASK, f"{HERE}:BrightnessPredictor", tile_merger="(no large images)"))
    register_torch_task(TorchTask(TASK, f"{HERE}:BrightnessAdapter", f"{HERE}:read_labelled", f"{HERE}:BrightnessExport"))
    register_model(MODEL, task=TASK)(build)
    try:
        yield
    finally:
        del DEPLOY_TASKS[TASK], TORCH_TASKS[TASK]
        unregister_model(MODEL)
