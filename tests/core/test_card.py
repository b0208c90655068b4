import json

import pytest

from leanvision.core import (
    AnchorSpec,
    BoxCoderSpec,
    InputSpec,
    ModelCard,
    ModelError,
    Precision,
    Task,
)


def detection_card(**changes) -> ModelCard:
    card = ModelCard(
        name="retinanet_mbv2_slim",
        task=Task.DETECT,
        class_names=("abnormal",),
        input=InputSpec(height=800, width=800),
        anchors=AnchorSpec(sizes=((32,), (64,)), aspect_ratios=((0.5, 1.0, 2.0),) * 2, strides=(8, 16)),
        box_coder=BoxCoderSpec(),
        metrics={"map50": 0.91},
    )
    return card.replace(**changes)


def test_json_round_trip(tmp_path):
    card = detection_card(precision=Precision.INT8)
    card.save(tmp_path)
    loaded = ModelCard.load(tmp_path)
    assert loaded == card
    raw = json.loads((tmp_path / "model_card.json").read_text())
    assert raw["schema_version"] == ModelCard.SCHEMA_VERSION and raw["task"] == "detect"


def test_newer_schema_is_refused(tmp_path):
    card = detection_card()
    data = card.to_dict() | {"schema_version": ModelCard.SCHEMA_VERSION + 1}
    (tmp_path / "model_card.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="newer than this leanvision"):
        ModelCard.load(tmp_path)


def test_missing_card_names_the_path(tmp_path):
    with pytest.raises(ModelError, match="model card not found") as info:
        ModelCard.load(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_detection_card_needs_decode_parameters():
    with pytest.raises(ValueError, match="anchors and box_coder"):
        detection_card(anchors=None)


@pytest.mark.parametrize(("field", "value"), [("layout", "NHWC"), ("color", "GRAY")])
def test_an_input_layout_or_colour_the_runtime_cannot_feed_is_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        InputSpec(height=8, width=8, **{field: value})
