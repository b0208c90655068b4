"""DetectionPredictor: card-driven preprocessing, errors, overrides, letterbox, torch-free use."""

from __future__ import annotations

import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from leanvision.core import (
    ConfigError,
    DataError,
    InputSpec,
    ModelCard,
    ModelError,
    NmsKind,
    OutputSpec,
    Precision,
    StagedPredictor,
)
from leanvision.runtime import DetectionPredictor, PostprocessOptions, load_predictor
from leanvision.runtime.nms import SoftKind
from tests.runtime.tiny_retinanet import synthetic_images, torchvision_detect
from tests.templates.engine_contract import TOLERANCES, agreement, to_image_pixels


@pytest.fixture(scope="module")
def images():
    return synthetic_images(4)


def model_dir_with_card(src, tmp_path, **input_changes):
    out = tmp_path / "model"
    out.mkdir()
    shutil.copy(src / "model.onnx", out)
    card = ModelCard.load(src)
    if input_changes:
        card = card.replace(input=InputSpec.from_dict(card.input.to_dict() | input_changes))
    card.save(out)
    return out


def test_predictor_is_staged_and_call_equals_the_stages(tiny_model_dir, images):
    predictor = load_predictor(tiny_model_dir)
    assert isinstance(predictor, StagedPredictor)
    prepared = predictor.preprocess(images)
    staged = []
    predictor.submit(prepared, lambda raw: staged.extend(predictor.postprocess(raw, prepared)))
    predictor.wait_all()
    called = predictor(images)
    assert len(called) == len(images) and sum(len(d) for d in called) > 0
    assert all(a.equals(b) for a, b in zip(called, staged, strict=True))
    assert predictor([]) == []
    assert "tiny_retinanet_test" in repr(predictor)
    with predictor:
        pass  # closing waits for in-flight work and releases the engine


def test_detections_are_in_source_pixels(tiny_model_dir, images):
    for image, dets in zip(images, load_predictor(tiny_model_dir)(images), strict=True):
        h, w = image.shape[:2]
        assert dets.boxes.dtype == np.float32 and (dets.boxes >= 0).all()
        assert (dets.boxes[:, [0, 2]] <= w).all() and (dets.boxes[:, [1, 3]] <= h).all()
        assert (np.diff(dets.scores) <= 0).all()


def test_letterbox_card_matches_torchvision_on_the_padded_input(tiny_model_dir, tiny_retinanet, tmp_path, images):
    predictor = load_predictor(model_dir_with_card(tiny_model_dir, tmp_path, resize="letterbox"))
    prepared = predictor.preprocess(images)
    assert any(t.pad_x or t.pad_y for t in prepared.transforms)
    # As torchvision's transform pads a batch: boxes are clipped to the image, not the padding.
    sizes = [t.resized_hw for t in prepared.transforms]
    expected = to_image_pixels(torchvision_detect(tiny_retinanet, prepared.batch, sizes), prepared)
    result = agreement(expected, predictor(images), TOLERANCES[Precision.FP32],
                       threshold=predictor.options.score_threshold, max_detections=predictor.options.max_detections)
    assert result["ref"][0] == result["got"][0] == 1.0 and result["ref"][1] > 0


def test_preprocess_letterbox_puts_the_image_top_left_and_pads(tiny_model_dir, tmp_path):
    predictor = load_predictor(model_dir_with_card(tiny_model_dir, tmp_path, resize="letterbox", pad_value=0))
    image = np.full((100, 400, 3), 200, np.uint8)  # 4:1 -> 50 x 200 inside the 224 x 200 input
    image[40:60, 100:140] = 255
    prepared = predictor.preprocess([image])
    t = prepared.transforms[0]
    assert t.resized_hw == (50, 200) and (t.pad_x, t.pad_y) == (0, 174)
    pixels = prepared.batch[0, 0] * predictor.card.input.std[0] + predictor.card.input.mean[0]
    assert np.allclose(pixels[50:], 0, atol=1e-3) and np.allclose(pixels[:50, :10], 200, atol=1e-3)
    ys, xs = np.nonzero(pixels > 250)
    box = t.invert_boxes(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]))
    np.testing.assert_allclose(box, [[100, 40, 140, 60]], atol=2)  # round trip within a resampled pixel


def test_bgr_and_uint8_cards_change_the_model_input(tiny_model_dir, tmp_path):
    rgb = load_predictor(tiny_model_dir)
    bgr = load_predictor(model_dir_with_card(tiny_model_dir, tmp_path, color="BGR"))
    image = np.random.default_rng(0).integers(0, 256, (224, 200, 3), dtype=np.uint8)
    mean, std = np.array(rgb.card.input.mean), np.array(rgb.card.input.std)
    # Channel 2 of the model input is blue: image channel 2 for RGB, image channel 0 for BGR.
    np.testing.assert_allclose(rgb.preprocess([image]).batch[0, 2], (image[..., 2] - mean[2]) / std[2], atol=1e-5)
    np.testing.assert_allclose(bgr.preprocess([image]).batch[0, 2], (image[..., 0] - mean[2]) / std[2], atol=1e-5)
    uint8_input = InputSpec.from_dict(rgb.card.input.to_dict() | {"dtype": "uint8"})
    batch = DetectionPredictor(rgb.engine, rgb.card.replace(input=uint8_input)).preprocess([image]).batch
    assert batch.dtype == np.uint8
    np.testing.assert_array_equal(batch[0], image.transpose(2, 0, 1))


def test_image_files_are_read_and_bad_images_are_data_errors(tiny_model_dir, tmp_path, images):
    predictor = load_predictor(tiny_model_dir)
    png = tmp_path / "image.png"
    assert cv2.imwrite(str(png), cv2.cvtColor(images[1], cv2.COLOR_RGB2BGR))
    assert predictor([png])[0].equals(predictor([images[1]])[0])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    for bad, message in [(broken, "not an image file"), (tmp_path / "nope.png", "image file not found")]:
        with pytest.raises(DataError, match=message) as info:
            predictor([images[0], bad])
        assert info.value.path == str(bad)
    with pytest.raises(DataError, match=r"image 1: expected an HxWx3 uint8 RGB array, got float32 \(8, 8, 3\)"):
        predictor([images[0], np.zeros((8, 8, 3), np.float32)])


def test_card_disagreeing_with_the_model_input_names_both(tiny_model_dir, tmp_path):
    model_dir = model_dir_with_card(tiny_model_dir, tmp_path, height=800, width=800)
    with pytest.raises(ModelError, match=r"model_card\.json says input 800x800 but model\.onnx takes 224x200"):
        load_predictor(model_dir)


def test_card_naming_missing_outputs_or_wrong_anchors_is_a_model_error(tiny_model_dir, tmp_path):
    model_dir = model_dir_with_card(tiny_model_dir, tmp_path)
    card = ModelCard.load(model_dir)
    card.replace(outputs=(OutputSpec("logits", "N,A,C"), OutputSpec("boxes", "N,A,4"))).save(model_dir)
    with pytest.raises(ModelError, match="model has no output 'logits'"):
        load_predictor(model_dir)
    anchors = card.anchors.__class__(card.anchors.sizes, card.anchors.aspect_ratios, card.anchors.strides,
                                     ((28, 25), (14, 13), (8, 7)))
    card.replace(anchors=anchors).save(model_dir)
    predictor = load_predictor(model_dir)
    with pytest.raises(ModelError, match=r"model outputs \[1, 2793, 2\].*implies \[\[1, 2814, 2\]"):
        predictor([np.zeros((50, 50, 3), np.uint8)])


def test_missing_directory_card_or_model_file(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="model directory not found"):
        load_predictor(tmp_path / "absent")
    with pytest.raises(ModelError, match="model card not found"):
        load_predictor(tmp_path)
    ModelCard.load(tiny_model_dir).save(tmp_path)
    with pytest.raises(ModelError, match="no model file in the model directory"):
        load_predictor(tmp_path)


@pytest.mark.parametrize("kind", list(NmsKind))
def test_every_nms_kind_runs_from_an_override(tiny_model_dir, images, kind):
    hard = load_predictor(tiny_model_dir)(images)
    predictor = load_predictor(tiny_model_dir, overrides={"nms": kind.value, "matrix_kind": "linear"})
    assert predictor.options.nms is kind and predictor.options.matrix_kind is SoftKind.LINEAR
    dets = predictor(images)
    assert [len(d) > 0 for d in dets] == [len(d) > 0 for d in hard]
    for d in dets:
        assert (np.diff(d.scores) <= 0).all() and (d.scores > 0.3).all()
    for d, h in zip(dets, hard, strict=True):  # the best box is never decayed: all start with it
        assert len(d) == 0 or d[0].equals(h[0])


def test_overrides_are_validated_and_change_thresholds(tiny_model_dir, images):
    strict = load_predictor(tiny_model_dir, overrides={"score_threshold": 0.6, "max_detections": 3})(images)
    assert all(len(d) <= 3 and (d.scores > 0.6).all() for d in strict)
    with pytest.raises(ConfigError, match="unknown key 'iou'"):
        load_predictor(tiny_model_dir, overrides={"iou": 0.3})
    with pytest.raises(ConfigError, match=r"postprocess\.nms"):
        load_predictor(tiny_model_dir, overrides={"nms": "fast"})
    assert PostprocessOptions(post_score_threshold=0.01).decayed_threshold == 0.01


BLOCK_TORCH = """
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'timm', 'nncf'):
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, BlockTorch())
"""


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_predicts_where_torch_cannot_be_imported(tiny_model_dir, tiny_ir_dir, backend):
    model_dir = tiny_ir_dir if backend == "openvino" else tiny_model_dir
    code = BLOCK_TORCH + (
        "import numpy as np\n"
        "from leanvision.runtime import load_predictor\n"
        f"p = load_predictor({str(model_dir)!r}, backend={backend!r})\n"
        "rng = np.random.default_rng(0)\n"
        "dets = p([rng.integers(0, 255, (300, 260, 3), dtype=np.uint8)])\n"
        "assert 'torch' not in sys.modules\n"
        "print(len(dets))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "1"
