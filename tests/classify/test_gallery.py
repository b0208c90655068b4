"""`leanvision val`'s worst-errors gallery for classifiers: which misclassified images, in
which order (against a hand-computed case), the PNG it draws, and the validation report
that writes it (or, with no error, says so and leaves none)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from leanvision.core import DataError
from leanvision.evaluation.gallery import GALLERY_NAME, worst_errors, write_error_gallery

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _confidence(top: float, others: list[float]) -> float:
    return math.exp(top) / (math.exp(top) + sum(math.exp(x) for x in others))


def test_worst_errors_are_the_wrong_images_most_confident_first_ties_in_image_order():
    logits = np.array([
        [2.0, 0.0, 0.0],  # 0: label 0, right
        [0.0, 3.0, 0.0],  # 1: label 0, predicted 1 with e^3 / (e^3 + 2)
        [1.0, 0.0, 0.0],  # 2: label 2, predicted 0 with e / (e + 2)
        [0.0, 0.0, 3.0],  # 3: label 1, predicted 2 with e^3 / (e^3 + 2): ties image 1, after it
        [1.0, 1.0, 0.0],  # 4: label 2, a tie in the logits: predicted 0 (lower index), e / (2e + 1)
        [0.0, 5.0, 0.0],  # 5: label 1, right
    ])
    labels = [0, 0, 2, 1, 2, 1]
    errors = worst_errors(logits, labels)
    assert [(e.index, e.true, e.predicted) for e in errors] == [(1, 0, 1), (3, 1, 2), (2, 2, 0), (4, 2, 0)]
    expected = [_confidence(3, [0, 0]), _confidence(3, [0, 0]), _confidence(1, [0, 0]), _confidence(1, [1, 0])]
    assert [e.confidence for e in errors] == pytest.approx(expected, rel=1e-6)
    assert worst_errors(logits, labels, limit=2) == errors[:2]
    assert worst_errors(logits, [0, 1, 0, 2, 0, 1]) == []  # every image right


def test_worst_errors_refuses_scores_that_do_not_fit_the_labels():
    with pytest.raises(DataError, match="need \\(N, C\\) logits"):
        worst_errors(np.zeros((3, 2)), [0, 1])
    with pytest.raises(DataError, match="labels must be class indices in \\[0, 2\\)"):
        worst_errors(np.zeros((2, 2)), [0, 2])
    with pytest.raises(DataError, match="finite"):
        worst_errors(np.array([[0.0, np.nan]]), [0])


def _solid(path: Path, rgb: tuple[int, int, int], width: int, height: int) -> Path:
    image = np.empty((height, width, 3), np.uint8)
    image[:] = rgb
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def _blob(png: np.ndarray, rgb: tuple[int, int, int]) -> tuple[int, int]:
    """(height, width) of the bounding box of the pixels within 10 of `rgb`."""
    ys, xs = np.nonzero((np.abs(png.astype(int) - np.array(rgb)) <= 10).all(axis=2))
    assert len(ys), f"no pixel of colour {rgb} in the gallery"
    return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def test_the_gallery_draws_every_image_whole_with_its_aspect_kept(tmp_path):
    tall = _solid(tmp_path / "tall.png", (255, 0, 255), 30, 150)  # h / w = 5
    wide = _solid(tmp_path / "wide.jpg", (0, 255, 0), 200, 50)  # h / w = 0.25
    others = [_solid(tmp_path / f"o{i}.png", (0, 0, 255), 64, 64) for i in range(5)]
    out = tmp_path / "out" / GALLERY_NAME
    written = write_error_gallery([tall, wide, *others], ["cola 0.5 l"] * 7, ["a very long product name that is cut"] * 7,
                                  [0.97, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4], out, title="7 of 7 misclassified images")
    assert written == out and out.read_bytes().startswith(PNG_SIGNATURE)
    png = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert png.shape[1] >= 6 * 150 and png.shape[0] >= 2 * 150  # two rows of six tiles
    height, width = _blob(png, (255, 0, 255))
    assert height / width == pytest.approx(5, rel=0.15)
    height, width = _blob(png, (0, 255, 0))
    assert height / width == pytest.approx(0.25, rel=0.15)
    assert [p.name for p in out.parent.iterdir()] == [GALLERY_NAME]  # no temp file left behind


def test_no_image_no_gallery_and_mismatched_captions_are_refused(tmp_path):
    out = tmp_path / GALLERY_NAME
    assert write_error_gallery([], [], [], [], out) is None
    assert not out.exists()
    image = _solid(tmp_path / "a.png", (10, 20, 30), 8, 8)
    with pytest.raises(DataError, match="as many true names"):
        write_error_gallery([image], ["a", "b"], ["c"], [0.5], out)
    with pytest.raises(DataError, match=r"confidences must be probabilities in \[0, 1\]"):
        write_error_gallery([image], ["a"], ["b"], [1.5], out)
    assert not out.exists()


def test_the_gallery_module_does_not_need_torch(tmp_path):
    image = _solid(tmp_path / "a.png", (10, 20, 30), 8, 8)
    code = ("import sys\nfrom leanvision.evaluation.gallery import write_error_gallery\n"
            f"write_error_gallery([{str(image)!r}], ['a'], ['b'], [0.5], {str(tmp_path / 'g.png')!r})\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "g.png").read_bytes().startswith(PNG_SIGNATURE)


# --- through the classifier's `validate` -----------------------------------------------------


def colour_classifier():
    """A two-class model that tells blue from red: logits (B - R, R - B) of the mean
    normalised channels (torch imported here, not when the file is collected)."""
    import torch
    from torch import nn

    class ColourClassifier(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mean = x.mean(dim=(2, 3))
            diff = mean[:, 2] - mean[:, 0]
            return torch.stack([diff, -diff], dim=1)

    return ColourClassifier().eval()


def _validate(root: Path, out_dir: Path):
    from leanvision.core import InputSpec, ModelCard, Task
    from leanvision.data.labelled import read_classification_set
    from leanvision.training.tasks.classify import ClassifyAdapter

    card = ModelCard(name="colour", task=Task.CLASSIFY, class_names=("blue", "red"),
                     input=InputSpec(height=32, width=32), class_counts=(5, 5))
    labelled = read_classification_set(root, card.class_names)
    return ClassifyAdapter().validate(colour_classifier(), labelled, card, batch_size=4, progress=None,
                                      out_dir=out_dir)


def test_validate_writes_the_worst_errors_most_confident_first(tmp_path):
    root = tmp_path / "val"
    (root / "blue").mkdir(parents=True)
    (root / "red").mkdir()
    _solid(root / "blue" / "b_right.png", (0, 0, 230), 32, 32)
    _solid(root / "blue" / "r255.png", (255, 0, 0), 32, 32)  # labelled blue, clearly red: the worst
    _solid(root / "blue" / "r150.png", (150, 0, 0), 32, 32)  # labelled blue, faintly red
    _solid(root / "red" / "b200.png", (0, 0, 200), 32, 32)  # labelled red, blue
    _solid(root / "red" / "r_right.png", (220, 0, 0), 32, 32)
    out_dir = tmp_path / "out"
    report = _validate(root, out_dir)
    gallery = out_dir / GALLERY_NAME
    assert gallery.read_bytes().startswith(PNG_SIGNATURE) and cv2.imread(str(gallery)) is not None
    assert report.json["worst_errors_png"] == str(gallery) and report.json["misclassified"] == 3
    listed = report.json["worst_errors"]
    assert [Path(e["file"]).name for e in listed] == ["r255.png", "b200.png", "r150.png"]
    assert [(e["true_name"], e["predicted_name"]) for e in listed] == [("blue", "red"), ("red", "blue"),
                                                                       ("blue", "red")]
    confidences = [e["confidence"] for e in listed]
    assert confidences == sorted(confidences, reverse=True) and all(0.5 < c < 1 for c in confidences)
    assert report.json["top1"] == pytest.approx(2 / 5)
    assert any(str(gallery) in line and "3 of 3 misclassified" in line for line in report.lines)
    json.dumps(report.json)  # metrics.json can hold it


def test_validate_with_no_error_writes_no_gallery_and_says_so(tmp_path):
    root = tmp_path / "val"
    for name, rgb in (("blue", (0, 0, 230)), ("red", (230, 0, 0))):
        (root / name).mkdir(parents=True)
        _solid(root / name / f"{name}.png", rgb, 32, 32)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / GALLERY_NAME).write_bytes(b"a previous run's gallery")
    report = _validate(root, out_dir)
    assert report.json["top1"] == 1.0
    assert "no misclassified image: no worst_errors.png" in report.lines
    assert report.json["worst_errors_png"] is None and report.json["misclassified"] == 0
    assert not (out_dir / GALLERY_NAME).exists()  # not another run's errors beside these metrics

