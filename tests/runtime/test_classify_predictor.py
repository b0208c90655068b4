"""ClassifyPredictor on a hand-built ONNX classifier (no torch): logits against a numpy
reference of the same graph, flip TTA, ensembles (`EnsemblePredictor`), and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from leanvision.core import (
    ClassProbs,
    ConfigError,
    InputSpec,
    ModelCard,
    ModelError,
    OutputSpec,
    ResizeMode,
    StagedPredictor,
    Task,
)
from leanvision.runtime import EngineOptions, open_engine
from leanvision.runtime.classify import ClassifyPredictor, EnsemblePredictor, load_ensemble
from leanvision.runtime.preprocess import prepare_images

HW = (24, 32)
CLASSES = ("apple", "bread", "cheese", "dates", "eggs")
rng = np.random.default_rng(0)
# A per-pixel weight map before the pooling makes the logits depend on where things are, so
# mirroring an image (or moving its padding) changes them.
WEIGHT_MAP = rng.normal(size=(1, 3, *HW)).astype(np.float32)
PROJECTION = rng.normal(size=(3, len(CLASSES))).astype(np.float32)
BIAS = rng.normal(size=len(CLASSES)).astype(np.float32)


def reference(batch: np.ndarray, classes: int = len(CLASSES), factor: float = 1.0) -> np.ndarray:
    """The graph of `write_classifier` in numpy: (N, 3, H, W) -> (N, C) logits."""
    return (batch * WEIGHT_MAP * factor).mean(axis=(2, 3)) @ PROJECTION[:, :classes] + BIAS[:classes]


def write_classifier(path: Path, *, classes: int = len(CLASSES), output: str = "logits", batch: int | str = "N",
                     factor: float = 1.0) -> Path:
    """Mul(weight map x factor) -> GlobalAveragePool -> Flatten -> MatMul -> Add: (N, 3, H, W) -> (N, C)."""
    weights = [numpy_helper.from_array((WEIGHT_MAP * np.float32(factor)).astype(np.float32), "weight_map"),
               numpy_helper.from_array(PROJECTION[:, :classes].copy(), "projection"),
               numpy_helper.from_array(BIAS[:classes].copy(), "bias")]
    nodes = [helper.make_node("Mul", ["images", "weight_map"], ["weighted"]),
             helper.make_node("GlobalAveragePool", ["weighted"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "projection"], ["scores"]),
             helper.make_node("Add", ["scores", "bias"], [output])]
    graph = helper.make_graph(
        nodes, "tiny_classifier", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, *HW])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, classes])], initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def card(resize: ResizeMode = ResizeMode.CENTER_CROP, task: Task = Task.CLASSIFY) -> ModelCard:
    return ModelCard(name="tiny_classifier", task=task, class_names=CLASSES,
                     input=InputSpec(height=HW[0], width=HW[1], resize=resize, pad_value=114),
                     outputs=(OutputSpec("logits", "N,C"),))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return write_classifier(tmp_path_factory.mktemp("classifier") / "model.onnx")


def predictor(path: Path, resize: ResizeMode = ResizeMode.CENTER_CROP, **overrides) -> ClassifyPredictor:
    engine = open_engine(path, options=EngineOptions(threads=1))
    try:
        return ClassifyPredictor(engine, card(resize), overrides=overrides)
    except (ModelError, ConfigError):
        engine.close()
        raise


def images(sizes=((40, 90), (60, 20), (24, 32))) -> list[np.ndarray]:
    generator = np.random.default_rng(1)
    return [generator.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in sizes]


@pytest.mark.parametrize("resize", [ResizeMode.CENTER_CROP, ResizeMode.LETTERBOX, ResizeMode.STRETCH])
def test_logits_are_the_graphs_on_the_prepared_input(model_file, resize):
    with predictor(model_file, resize) as classify:
        assert isinstance(classify, StagedPredictor)
        results = classify(images())
        prepared = classify.preprocess(images())
        staged = []
        classify.submit(prepared, lambda raw: staged.extend(classify.postprocess(raw, prepared)))
        classify.wait_all()
    expected = reference(prepare_images(images(), card(resize).input).batch)
    assert all(isinstance(r, ClassProbs) for r in results) and len(results) == 3
    np.testing.assert_allclose(np.stack([r.logits for r in results]), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.stack([r.logits for r in staged]), np.stack([r.logits for r in results]))
    assert [r.name for r in results] == [CLASSES[i] for i in expected.argmax(1)]
    assert "tta=none" in repr(classify)


def test_flip_averages_the_logits_of_the_image_and_its_mirror(model_file):
    # 24 x 20 fits the 24 x 32 input unscaled: letterboxed, 12 padding columns on the right.
    image = images([(24, 20)])[0]
    spec = card(ResizeMode.LETTERBOX).input
    plain = reference(prepare_images([image], spec).batch)[0]
    mirror = reference(prepare_images([image[:, ::-1]], spec).batch)[0]
    with predictor(model_file, ResizeMode.LETTERBOX, tta="flip") as classify:
        prepared = classify.preprocess([image])
        result = classify([image])[0]
    assert prepared.batch.shape[0] == 2 and len(prepared.sizes) == len(prepared.transforms) == 1
    np.testing.assert_allclose(result.logits, (plain + mirror) / 2, rtol=1e-5, atol=1e-5)
    # Both alternatives differ: no TTA, and mirroring the whole input (padding moved left).
    whole = reference(prepare_images([image], spec).batch[..., ::-1])[0]
    assert np.abs(result.logits - plain).max() > 1e-3
    assert np.abs(result.logits - (plain + whole) / 2).max() > 1e-3


def test_flip_mirrors_the_whole_input_under_center_crop(model_file):
    batch = images()
    with predictor(model_file, tta="flip") as classify:
        results = classify(batch)
    inputs = prepare_images(batch, card().input).batch
    expected = (reference(inputs) + reference(inputs[..., ::-1])) / 2
    np.testing.assert_allclose(np.stack([r.logits for r in results]), expected, rtol=1e-5, atol=1e-5)


def test_a_card_of_another_task_is_refused(model_file):
    engine = open_engine(model_file)
    with pytest.raises(ModelError, match="is for task count, not classification"):
        ClassifyPredictor(engine, card(task=Task.COUNT).replace(output_stride=8))
    engine.close()


def test_an_output_of_the_wrong_shape_is_refused(tmp_path):
    path = write_classifier(tmp_path / "four" / "model.onnx", classes=4)
    with predictor(path) as classify, pytest.raises(ModelError, match=r"outputs \[3, 4\].*implies \[3, 5\]"):
        classify(images())
    with predictor(path, tta="flip") as classify, pytest.raises(ModelError, match=r"\[6, 4\].*implies \[6, 5\]"):
        classify(images())
    other = write_classifier(tmp_path / "named" / "model.onnx", output="scores_out")
    with pytest.raises(ModelError, match="no output 'logits'"):
        predictor(other)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"nms": "matrix"}, r"unknown override 'nms' for a classifier \(allowed: tta\)"),
    ({"tta": "five_crop"}, "tta must be one of none, flip, got 'five_crop'"),
])
def test_bad_overrides_are_refused(model_file, overrides, message):
    with pytest.raises(ConfigError, match=message):
        predictor(model_file, **overrides)


def test_flip_needs_a_dynamic_batch(tmp_path):
    path = write_classifier(tmp_path / "static" / "model.onnx", batch=1)
    with pytest.raises(ConfigError, match=r"dynamic batch axis .*takes batch 1"):
        predictor(path, tta="flip")
    with predictor(path) as classify:
        assert classify(images([(30, 30)]))[0].num_classes == len(CLASSES)


# Ensembles: two models differing in weights (factor 1 and -2), the mean of their logits.
FACTORS = (1.0, -2.0)


@pytest.fixture(scope="module")
def member_dirs(tmp_path_factory) -> list[Path]:
    """Two exported model directories (model.onnx + model_card.json), letterbox cards."""
    dirs = []
    for i, factor in enumerate(FACTORS):
        directory = tmp_path_factory.mktemp(f"member{i}")
        write_classifier(directory / "model.onnx", factor=factor)
        card(ResizeMode.LETTERBOX).replace(name=f"member{i}").save(directory)
        dirs.append(directory)
    return dirs


@pytest.mark.parametrize("tta", ["none", "flip"])
def test_an_ensemble_is_the_mean_of_its_members_logits(member_dirs, tta):
    batch = images([(24, 20), (12, 32), (24, 32)])  # fit unscaled: padding right, below, none
    spec = card(ResizeMode.LETTERBOX).input
    plain = prepare_images(batch, spec).batch
    mirrored = prepare_images([b[:, ::-1] for b in batch], spec).batch  # the mirrored images, as preprocessed

    def member(factor: float) -> np.ndarray:  # one model's logits, by hand: its TTA first
        logits = reference(plain, factor=factor)
        return (logits + reference(mirrored, factor=factor)) / 2 if tta == "flip" else logits

    expected = (member(FACTORS[0]) + member(FACTORS[1])) / 2
    options = EngineOptions(threads=1)
    with load_ensemble(member_dirs, options=options, overrides={"tta": tta}) as ensemble:
        assert isinstance(ensemble, StagedPredictor) and ensemble.card.name == "member0"
        results = ensemble(batch)
        prepared = ensemble.preprocess(batch)
        staged = []
        ensemble.submit(prepared, lambda raw: staged.extend(ensemble.postprocess(raw, prepared)))
        ensemble.wait_all()
    got = np.stack([r.logits for r in results])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.stack([r.logits for r in staged]), got)
    assert np.abs(got - member(FACTORS[0])).max() > 1e-2 and np.abs(got - member(FACTORS[1])).max() > 1e-2
    assert [r.name for r in results] == [CLASSES[i] for i in got.argmax(1)]


def test_an_ensemble_of_predictors_averages_their_exact_logits(member_dirs):
    """The ensemble's logits are exactly the mean of its members' own, TTA included."""
    batch = images()

    def open_member(directory: Path) -> ClassifyPredictor:
        return ClassifyPredictor(open_engine(directory / "model.onnx", options=EngineOptions(threads=1)),
                                 ModelCard.load(directory), overrides={"tta": "flip"})

    singles = []
    for directory in member_dirs:
        with open_member(directory) as one:
            singles.append(np.stack([r.logits for r in one(batch)]))
    with EnsemblePredictor([open_member(d) for d in member_dirs]) as ensemble:
        got = np.stack([r.logits for r in ensemble(batch)])
        assert "tta=flip" in repr(ensemble)
    np.testing.assert_allclose(got, (singles[0] + singles[1]) / 2, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("change", "message"), [
    ({"class_names": ("apple", "bread", "cheese", "dates", "figs")},
     r"member 'other' has classes \[apple, bread, cheese, dates, ...\] \(5\), the first model"),
    ({"input": InputSpec(height=HW[0], width=HW[1], resize=ResizeMode.CENTER_CROP, pad_value=114)},
     r"member 'other' has another input spec than the first model \(resize differ\)"),
    ({"task": Task.COUNT, "output_stride": 8}, r"member 'other' is a count model; an ensemble averages classifiers"),
])
def test_members_that_disagree_are_refused_before_any_engine_opens(member_dirs, tmp_path, change, message):
    other = tmp_path / "other"
    other.mkdir()
    write_classifier(other / "model.onnx")
    card(ResizeMode.LETTERBOX).replace(name="other", **change).save(other)
    with pytest.raises(ConfigError, match=message) as error:
        load_ensemble([member_dirs[0], other])
    assert error.value.path == str(other) and "\n" not in str(error.value)


def test_an_ensemble_needs_two_members_of_one_tta(member_dirs):
    with pytest.raises(ConfigError, match="at least 2 models, got 1"):
        load_ensemble(member_dirs[:1])
    first = ClassifyPredictor(open_engine(member_dirs[0] / "model.onnx"), ModelCard.load(member_dirs[0]))
    second = ClassifyPredictor(open_engine(member_dirs[1] / "model.onnx"), ModelCard.load(member_dirs[1]),
                               overrides={"tta": "flip"})
    with pytest.raises(ConfigError, match=r"different TTA \(flip, none\)"):
        EnsemblePredictor([first, second])
    first.close()
    second.close()
