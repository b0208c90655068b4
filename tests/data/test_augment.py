"""Augmentations keep boxes true to pixels; stain normalisation; recipes.

Scenes for the properties: each target is a solid rectangle of its own saturated colour
(label k is colour PALETTE[k]) on a plain grey background, rectangles at least GAP px
apart. After an op, every output box must tightly bound the pixels still of its colour
(a pixel counts when every channel is within PURE_TOL of the colour, so pixels blended
with a neighbour at a resized edge do not), no box may leave the image, and a target may
be dropped only when its colour is (nearly) gone.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leanvision.core import ConfigError, DataError, Detections, ResizeMode
from leanvision.data.augment import (
    Compose,
    ImagePool,
    OnlineCropResize,
    PhotometricJitter,
    RandomFlip,
    RandomShift,
    ReplaceBackground,
    Resize,
    StainNorm,
    build_augmentation,
    crop_resize,
    fit_macenko,
    fit_to_size,
    flip,
    lab_stats,
    macenko,
    reinhard,
    stain_normalizer,
)
from leanvision.data.augment.common import group_boxes

PALETTE = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255)], np.int32)
BACKGROUND = (128, 128, 128)
NEGATIVE = (60, 60, 60)
PURE_TOL = 40  # a 50/50 blend with any other colour here is >= 64 away in some channel
GAP = 6  # > RandomShift's grouping margin (inpaint radius 3 + 1): every target moves alone

PROPERTY = settings(max_examples=40, deadline=None)


# --- scenes and checks ----------------------------------------------------------------


@st.composite
def scenes(draw, *, min_side: int = 4, max_side: int = 40, sizes=(24, 120), min_targets: int = 0):
    w, h = draw(st.integers(*sizes)), draw(st.integers(*sizes))
    rects: list[tuple[int, int, int, int]] = []
    for _ in range(draw(st.integers(min_targets, len(PALETTE)))):
        rw = draw(st.integers(min_side, min(max_side, w)))
        rh = draw(st.integers(min_side, min(max_side, h)))
        x, y = draw(st.integers(0, w - rw)), draw(st.integers(0, h - rh))
        if all(x >= bx + bw + GAP or bx >= x + rw + GAP or y >= by + bh + GAP or by >= y + rh + GAP
               for bx, by, bw, bh in rects):
            rects.append((x, y, rw, rh))  # the first always fits: min_targets=1 gives one or more
    return paint(w, h, rects)


def paint(w: int, h: int, rects) -> tuple[np.ndarray, Detections]:
    image = np.full((h, w, 3), BACKGROUND, np.uint8)
    for k, (x, y, rw, rh) in enumerate(rects):
        image[y:y + rh, x:x + rw] = PALETTE[k]
    boxes = np.array([[x, y, x + rw, y + rh] for x, y, rw, rh in rects], np.float32).reshape(-1, 4)
    return image, Detections.from_boxes(boxes, np.arange(len(rects)))


def colour_mask(image: np.ndarray, label: int) -> np.ndarray:
    return (np.abs(image.astype(np.int32) - PALETTE[label]).max(axis=2) <= PURE_TOL)


def colour_bounds(image: np.ndarray, label: int) -> np.ndarray | None:
    ys, xs = np.nonzero(colour_mask(image, label))
    return None if not len(xs) else np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def assert_consistent(image: np.ndarray, targets: Detections, tol: float) -> None:
    """Every box tightly bounds its colour (within `tol` px) and lies inside the image."""
    h, w = image.shape[:2]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert len(set(targets.labels.tolist())) == len(targets), "a target was duplicated"
    assert (targets.boxes >= 0).all() and (targets.boxes[:, [0, 2]] <= w).all() and (targets.boxes[:, [1, 3]] <= h).all()
    for box, label in zip(targets.boxes, targets.labels, strict=True):
        bounds = colour_bounds(image, int(label))
        assert bounds is not None, f"label {label}: box {box} kept but its colour is gone"
        assert np.abs(box - bounds).max() <= tol, f"label {label}: box {box} vs pixels {bounds}"


def resize_tolerance(scale: float) -> float:
    """Output px between a resized box edge and the last pure pixel: < 1 px for area
    averaging (shrinking); bilinear enlarging blends (scale - 1) / 2 px more."""
    return 1.0 + max(0.0, (scale - 1.0) / 2.0)


# --- geometric ------------------------------------------------------------------------


@PROPERTY
@given(scene=scenes(min_side=12), data=st.data())
def test_crop_resize_keeps_boxes_on_pixels_and_drops_exactly_the_cut_ones(scene, data):
    image, targets = scene
    h, w = image.shape[:2]
    crop = data.draw(st.integers(16, 2 * max(w, h)), label="crop")
    size = max(8, round(crop * data.draw(st.sampled_from([0.5, 0.75, 1.0, 1.6, 2.0]), label="scale")))
    x0 = data.draw(st.integers(1 - crop, w - 1), label="x0")
    y0 = data.draw(st.integers(1 - crop, h - 1), label="y0")
    out, kept = crop_resize(image, targets, (x0, y0), crop=crop, size=size, min_visibility=0.5)
    assert out.shape == (size, size, 3)
    assert_consistent(out, kept, resize_tolerance(size / crop))
    window = image[max(y0, 0):max(y0 + crop, 0), max(x0, 0):max(x0 + crop, 0)]
    for label in targets.labels.tolist():
        visible = colour_mask(window, label).sum() / colour_mask(image, label).sum()
        assert (label in kept.labels) == (visible >= 0.5), f"label {label}: {visible:.3f} of it in the window"


@PROPERTY
@given(scene=scenes(min_side=12, min_targets=1), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_online_crop_resize_holds_a_whole_target_at_inference_scale(scene, seed, data):
    image, targets = scene
    h, w = image.shape[:2]
    crop = data.draw(st.integers(40, 2 * max(w, h)), label="crop")
    size = crop // 2
    op = OnlineCropResize(crop=crop, size=size, p_target=1.0)
    x0, y0 = op.sample_window(h, w, targets, np.random.default_rng(seed))
    out, kept = op(image, targets, np.random.default_rng(seed))
    ref_image, ref_kept = crop_resize(image, targets, (x0, y0), crop=crop, size=size)
    assert np.array_equal(out, ref_image) and kept.equals(ref_kept)
    for extent, start in ((w, x0), (h, y0)):  # in the image if it is large enough, else around it
        assert (0 <= start <= extent - crop) if extent >= crop else (extent - crop <= start <= 0)
    whole = ((targets.boxes[:, 0] >= x0) & (targets.boxes[:, 2] <= x0 + crop)
             & (targets.boxes[:, 1] >= y0) & (targets.boxes[:, 3] <= y0 + crop))
    assert whole.any(), "no target lies entirely in the window"
    assert_consistent(out, kept, resize_tolerance(0.5))


def test_online_crop_resize_pads_small_images_and_keeps_the_scale():
    image, targets = paint(100, 60, [(10, 10, 20, 20)])
    out, kept = OnlineCropResize(crop=200, size=100, fill=0)(image, targets, np.random.default_rng(0))
    assert out.shape == (100, 100, 3)
    np.testing.assert_allclose(kept.boxes[0, 2:] - kept.boxes[0, :2], [10, 10])  # 20 px at scale 0.5
    # The image is 50 x 30 px after scaling (51 x 31 with blended edges); the rest is padding.
    assert (out.reshape(-1, 3) == 0).all(axis=1).sum() >= 100 * 100 - 51 * 31
    assert_consistent(out, kept, resize_tolerance(0.5))


def test_online_crop_resize_without_targets_or_p_target_zero_picks_any_window():
    op = OnlineCropResize(crop=100, size=50, p_target=0.0)
    windows = {op.sample_window(300, 300, Detections.empty(), np.random.default_rng(s)) for s in range(20)}
    assert len(windows) > 10 and all(0 <= x <= 200 and 0 <= y <= 200 for x, y in windows)


@PROPERTY
@given(scene=scenes(), horizontal=st.booleans(), vertical=st.booleans())
def test_flip_is_exact(scene, horizontal, vertical):
    image, targets = scene
    out, moved = flip(image, targets, horizontal=horizontal, vertical=vertical)
    assert_consistent(out, moved, tol=0)
    back, restored = flip(out, moved, horizontal=horizontal, vertical=vertical)
    assert np.array_equal(back, image) and restored.equals(targets)


@PROPERTY
@given(scene=scenes(), seed=st.integers(0, 2**32 - 1))
def test_random_flip_is_exact(scene, seed):
    image, targets = scene
    out, moved = RandomFlip(horizontal=0.5, vertical=0.5)(image, targets, np.random.default_rng(seed))
    assert_consistent(out, moved, tol=0)


@PROPERTY
@given(scene=scenes(min_side=12), height=st.integers(16, 200), width=st.integers(16, 200),
       mode=st.sampled_from([m for m in ResizeMode if m is not ResizeMode.CENTER_CROP]),
       fixed_scale=st.floats(0.25, 2.0))
def test_fit_to_size_gives_the_exact_size_and_true_boxes(scene, height, width, mode, fixed_scale):
    image, targets = scene
    h, w = image.shape[:2]
    scale_arg = fixed_scale if mode is ResizeMode.SCALE else None
    out, fitted = fit_to_size(image, targets, height, width, mode=mode, scale=scale_arg)
    assert out.shape == (height, width, 3) and len(fitted) == len(targets)
    scale = max(width / w, height / h)
    # A rectangle shrunk below ~3 px has no pure pixel left; only check those that keep some.
    big = (fitted.boxes[:, 2:] - fitted.boxes[:, :2]).min(axis=1) >= 3 if len(fitted) else np.zeros(0, bool)
    assert_consistent(out, fitted[big], resize_tolerance(scale))


def test_fit_to_size_refuses_a_centre_crop_that_would_cut_boxes():
    with pytest.raises(ConfigError, match="center_crop"):
        fit_to_size(np.zeros((20, 40, 3), np.uint8), Detections.empty(), 16, 16, mode=ResizeMode.CENTER_CROP)


# --- paste ------------------------------------------------------------------------------


@PROPERTY
@given(scene=scenes(), seed=st.integers(0, 2**32 - 1))
def test_random_shift_moves_one_target_and_inpaints_its_hole(scene, seed):
    image, targets = scene
    original = image.copy()
    out, moved = RandomShift(p=1.0)(image, targets, np.random.default_rng(seed))
    assert np.array_equal(image, original), "the input image was modified"
    assert np.array_equal(moved.labels, targets.labels)
    assert_consistent(out, moved, tol=0)
    changed = np.flatnonzero(np.abs(moved.boxes - targets.boxes).sum(axis=1) > 0)
    assert len(changed) <= 1  # targets are GAP apart: each is its own group
    for k in changed:
        x1, y1, x2, y2 = targets.boxes[k].astype(int)
        hole = out[y1:y2, x1:x2].astype(np.int32)
        covered = colour_mask(out[y1:y2, x1:x2], int(targets.labels[k]))  # where it landed on its old place
        # Filled from its grey surroundings: Telea's fill drifts by a few levels when the
        # hole is most of the image, but stays far from any target colour (>= 127 away).
        assert np.abs(hole[~covered] - BACKGROUND).max(initial=0) <= 32, "hole not filled from the background"


def test_random_shift_moves_when_there_is_room():
    image, targets = paint(120, 120, [(10, 10, 20, 16)])
    out, moved = RandomShift(p=1.0)(image, targets, np.random.default_rng(3))
    assert not np.array_equal(moved.boxes, targets.boxes)
    assert_consistent(out, moved, tol=0)


def test_random_shift_moves_near_neighbours_together():
    # 2 px apart, inside the inpainting margin: filling one's hole would smear the other.
    image, targets = paint(160, 160, [(10, 10, 20, 16), (32, 12, 10, 10)])
    for seed in range(5):
        out, moved = RandomShift(p=1.0)(image, targets, np.random.default_rng(seed))
        offsets = moved.boxes - targets.boxes
        assert np.array_equal(offsets[0], offsets[1])
        assert_consistent(out, moved, tol=0)


def plain_pool(colour=NEGATIVE, size=(90, 70)):
    def negatives(rng: np.random.Generator) -> np.ndarray:
        return np.full((size[1], size[0], 3), colour, np.uint8)
    return negatives


@PROPERTY
@given(scene=scenes(), seed=st.integers(0, 2**32 - 1), nw=st.integers(16, 200), nh=st.integers(16, 200))
def test_replace_background_pastes_true_boxes_onto_the_negative(scene, seed, nw, nh):
    image, targets = scene
    op = ReplaceBackground(plain_pool(size=(nw, nh)), p=1.0, stain_norm=None)
    out, pasted = op(image, targets, np.random.default_rng(seed))
    if out is image:  # nothing fitted: unchanged
        assert pasted is targets
        return
    assert out.shape == (nh, nw, 3)
    assert_consistent(out, pasted, tol=0)
    assert set(pasted.labels.tolist()) <= set(targets.labels.tolist())
    for label in set(targets.labels.tolist()) - set(pasted.labels.tolist()):
        assert not colour_mask(out, label).any(), f"label {label} dropped but its pixels were pasted"
    outside = np.ones((nh, nw), bool)
    for x1, y1, x2, y2 in pasted.boxes.astype(int):
        outside[y1:y2, x1:x2] = False
    assert (out[outside] == NEGATIVE).all()


def stained(stains, white, rng, shape=(64, 64), blank=0.3) -> np.ndarray:
    """A synthetic two-stain image: I = I0 exp(-S c) with gamma concentrations, a `blank`
    share of unstained pixels and 10% pure-stain pixels of each stain."""
    stains = np.asarray(stains, np.float64)
    stains = stains / np.linalg.norm(stains, axis=0)
    n = shape[0] * shape[1]
    c = rng.gamma(2.0, 0.35, (2, n))
    c[:, rng.random(n) < blank] = 0
    pure = rng.random(n)
    c[0, pure < 0.1] = 0
    c[1, (pure >= 0.1) & (pure < 0.2)] = 0
    rgb = (np.asarray(white, np.float64) + 1) * np.exp(-(stains @ c)).T - 1
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(*shape, 3)


HE = [[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]]  # Ruifrok & Johnston's H&E vectors (columns)
PAP = [[0.30, 0.10], [0.90, 0.50], [0.30, 0.85]]


@pytest.mark.parametrize("kind", [StainNorm.REINHARD, StainNorm.MACENKO])
def test_replace_background_stain_norm_changes_only_the_pasted_pixels(kind):
    rng = np.random.default_rng(0)
    negative = stained(HE, (235, 230, 240), rng, shape=(120, 150))
    cells = stained(PAP, (250, 250, 250), rng, shape=(100, 100))
    boxes = np.array([[5, 5, 35, 30], [50, 40, 90, 90]], np.float32)
    targets = Detections.from_boxes(boxes, [0, 1])
    raw_op = ReplaceBackground(lambda r: negative, p=1.0, stain_norm=None)
    norm_op = ReplaceBackground(lambda r: negative, p=1.0, stain_norm=kind)
    raw, raw_boxes = raw_op(cells, targets, np.random.default_rng(5))
    out, out_boxes = norm_op(cells, targets, np.random.default_rng(5))
    assert out_boxes.equals(raw_boxes) and len(out_boxes) == 2
    inside = np.zeros(out.shape[:2], bool)
    for x1, y1, x2, y2 in out_boxes.boxes.astype(int):
        inside[y1:y2, x1:x2] = True
    assert np.array_equal(out[~inside], negative[~inside])
    assert not np.array_equal(out[inside], raw[inside])


def test_replace_background_leaves_the_sample_when_nothing_fits():
    image, targets = paint(100, 100, [(0, 0, 60, 60)])
    out, kept = ReplaceBackground(plain_pool(size=(40, 40)), p=1.0, stain_norm=None)(
        image, targets, np.random.default_rng(0))
    assert out is image and kept is targets


def test_group_boxes_merges_overlapping_and_near_boxes_only():
    boxes = np.array([[0, 0, 10, 10], [8, 8, 20, 20], [30, 0, 40, 10], [43, 0, 50, 10], [80, 80, 90, 90]], np.float32)
    groups = group_boxes(boxes, margin=4)
    members = sorted(sorted(m.tolist()) for m, _ in groups)
    assert members == [[0, 1], [2, 3], [4]]
    bounds = {tuple(sorted(m.tolist())): b.tolist() for m, b in groups}
    assert bounds[(0, 1)] == [0, 0, 20, 20]


def test_image_pool_skips_unreadable_files(tmp_path, caplog):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((8, 9, 3), 200, np.uint8))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    pool = ImagePool([bad, good])
    images = [pool(np.random.default_rng(s)) for s in range(4)]
    assert all(im.shape == (8, 9, 3) for im in images)
    assert "bad.jpg" in caplog.text
    with pytest.raises(DataError):
        ImagePool([bad])(np.random.default_rng(0))


# --- photometric ------------------------------------------------------------------------


@PROPERTY
@given(scene=scenes(), seed=st.integers(0, 2**32 - 1))
def test_photometric_jitter_is_a_per_pixel_colour_map_and_keeps_boxes(scene, seed):
    image, targets = scene
    out, same = PhotometricJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)(
        image, targets, np.random.default_rng(seed))
    assert same is targets and out.shape == image.shape and out.dtype == np.uint8
    keys = image.reshape(-1, 3) @ np.array([65536, 256, 1])
    for key in np.unique(keys):
        values = out.reshape(-1, 3)[keys == key]
        assert (values == values[0]).all(), "equal input colours mapped to different outputs"


@pytest.mark.parametrize(
    ("name", "value"), [("brightness", 1.3), ("contrast", 0.6), ("saturation", 1.5), ("hue", 0.1)]
)
def test_photometric_adjustments_match_torchvision(name, value):
    """torchvision's functional ColorJitter pieces are the reference (uint8 rounding: 1 level)."""
    torch = pytest.importorskip("torch")
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    from leanvision.data.augment import photometric

    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    ours = getattr(photometric, f"adjust_{name}")(image.astype(np.float32) / 255, value)
    ours = np.clip(np.rint(ours * 255), 0, 255).astype(np.int32)
    ref = getattr(tvf, f"adjust_{name}")(torch.from_numpy(image.transpose(2, 0, 1).copy()), value)
    assert np.abs(ours - ref.numpy().transpose(1, 2, 0)).max() <= 1


def test_photometric_jitter_with_zero_amounts_is_the_identity():
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out, _ = PhotometricJitter(brightness=0, contrast=0, saturation=0, hue=0)(
        image, Detections.empty(), np.random.default_rng(1))
    assert np.array_equal(out, image)


# --- stain normalisation -----------------------------------------------------------------


def smooth_image(rng, mean, std, shape) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.normal(0, 1, (*shape, 3)).astype(np.float32), (0, 0), 2)
    return np.clip(np.rint(np.asarray(mean) + noise / noise.std() * std), 0, 255).astype(np.uint8)


def test_reinhard_gives_the_patch_the_reference_lab_statistics():
    rng = np.random.default_rng(1)
    patch = smooth_image(rng, (150, 110, 160), 20, (48, 40))
    background = smooth_image(rng, (205, 185, 210), 12, (120, 150))
    mean, std = lab_stats(background)
    out_mean, out_std = lab_stats(reinhard(patch, mean, std))
    before_mean, _ = lab_stats(patch)
    assert np.abs(before_mean - mean).max() > 10
    # Exact up to uint8 rounding of the result (colours stay inside the RGB gamut here).
    np.testing.assert_allclose(out_mean, mean, atol=0.25)
    np.testing.assert_allclose(out_std, std, atol=0.25)


def test_reinhard_turns_a_flat_patch_into_the_reference_mean():
    flat = np.full((10, 10, 3), (40, 90, 200), np.uint8)
    mean, std = lab_stats(np.full((5, 5, 3), (200, 180, 210), np.uint8))
    out = reinhard(flat, mean, std)
    assert (np.abs(out.astype(int) - (200, 180, 210)) <= 1).all()


def test_macenko_recovers_the_stain_vectors():
    style = fit_macenko(stained(HE, (235, 230, 240), np.random.default_rng(2)))
    truth = np.asarray(HE) / np.linalg.norm(HE, axis=0)
    cosines = (style.stains * truth).sum(axis=0)
    assert (cosines > 0.995).all(), cosines
    np.testing.assert_allclose(style.white, (235, 230, 240), atol=1)


def test_macenko_moves_the_patch_to_the_reference_stain_style():
    rng = np.random.default_rng(3)
    background = stained(HE, (235, 230, 240), rng, shape=(96, 96))
    patch = stained(PAP, (250, 250, 250), rng, shape=(48, 48))
    target_mean, target_std = lab_stats(background)
    before_mean, _ = lab_stats(patch)
    out_mean, out_std = lab_stats(macenko(patch, fit_macenko(background)))
    assert np.abs(before_mean - target_mean).max() > 20
    # Approximate: the stains are estimated from percentiles of ~2000 pixels, and both
    # images draw their own concentrations; measured here within ~2 LAB units.
    np.testing.assert_allclose(out_mean, target_mean, atol=4)
    np.testing.assert_allclose(out_std, target_std, atol=4)


def test_macenko_leaves_a_patch_without_stain_alone():
    reference = fit_macenko(stained(HE, (235, 230, 240), np.random.default_rng(4)))
    blank = np.full((20, 20, 3), 238, np.uint8)
    assert macenko(blank, reference) is blank
    assert fit_macenko(blank) is None
    assert stain_normalizer(StainNorm.MACENKO, blank) is None
    assert stain_normalizer(None, blank) is None


# --- recipes ------------------------------------------------------------------------------

S0_STEPS = [
    {"op": "replace_background", "p": 0.5, "stain_norm": None},
    {"op": "random_shift", "p": 0.5},
    {"op": "online_crop_resize", "crop": 64, "size": 32},
    {"op": "random_flip", "horizontal": 0.5, "vertical": 0.5},
]


@PROPERTY
@given(scene=scenes(min_side=12, min_targets=1), seed=st.integers(0, 2**32 - 1))
def test_s0_recipe_keeps_boxes_on_pixels_and_is_deterministic(scene, seed):
    image, targets = scene
    augment = build_augmentation(S0_STEPS, negatives=plain_pool(size=(100, 80)))
    out, kept = augment(image, targets, np.random.default_rng(seed))
    again, kept_again = augment(image, targets, np.random.default_rng(seed))
    assert np.array_equal(out, again) and kept.equals(kept_again)
    assert out.shape == (32, 32, 3)
    assert_consistent(out, kept, resize_tolerance(0.5))


def test_build_augmentation_builds_each_op_with_its_parameters():
    augment = build_augmentation(
        [
            {"op": "online_crop_resize", "crop": 1600, "size": 800, "p_target": 0.8},
            {"op": "random_flip"},
            {"op": "random_shift", "p": 0.3},
            {"op": "replace_background", "stain_norm": "reinhard"},
            {"op": "photometric_jitter", "hue": 0.05},
            {"op": "resize", "height": 640, "width": 480, "mode": "stretch"},
        ],
        negatives=plain_pool(),
    )
    assert isinstance(augment, Compose) and len(augment) == 6
    crop, flip_op, shift, replace, jitter, resize = augment
    assert crop == OnlineCropResize(crop=1600, size=800, p_target=0.8)
    assert flip_op == RandomFlip() and shift == RandomShift(p=0.3)
    assert isinstance(replace, ReplaceBackground) and replace.config.stain_norm is StainNorm.REINHARD
    assert jitter == PhotometricJitter(hue=0.05)
    assert resize == Resize(height=640, width=480, mode=ResizeMode.STRETCH)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"op": "random_flp"}], "unknown op 'random_flp'.*did you mean 'random_flip'"),
        ([{"op": "random_flip", "horizonal": 0.5}], r"augment\[0\].*unknown key 'horizonal'.*did you mean 'horizontal'"),
        ([{"op": "random_flip"}, {"op": "random_flip", "vertical": 1.5}], r"augment\[1\].*vertical must be a probability"),
        ([{"op": "online_crop_resize", "crop": "big"}], r"crop: expected an integer"),
        ([{"op": "replace_background", "stain_norm": "reinhardt"}], r"stain_norm.*'reinhardt'"),
        ([{"crop": 800}], r"augment\[0\]: missing 'op'"),
        (["random_flip"], r"augment\[0\]: expected a mapping"),
        ({"op": "random_flip"}, r"augment: expected a list"),
    ],
)
def test_recipe_errors_name_the_step_and_the_problem(steps, expected):
    with pytest.raises(ConfigError, match=expected):
        build_augmentation(steps, negatives=plain_pool())


def test_replace_background_without_negatives_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"augment\[1\] \(replace_background\) needs negative images"):
        build_augmentation([{"op": "random_flip"}, {"op": "replace_background"}])


def test_ops_validate_direct_construction():
    with pytest.raises(ValueError, match="p_target"):
        OnlineCropResize(p_target=2.0)
    with pytest.raises(ValueError, match="hue"):
        PhotometricJitter(hue=0.7)
    assert math.isclose(OnlineCropResize().size / OnlineCropResize().crop, 0.5)  # S0's defaults
