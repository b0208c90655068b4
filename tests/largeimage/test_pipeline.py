"""The large-image pipeline on a fake blob detector: equal to tile-by-tile by hand, merges
cut objects, reports bad files and goes on, writes every output and summary field."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from leanvision.core import ConfigError, DataError
from leanvision.largeimage.inputs import expand_inputs, output_stems
from leanvision.largeimage.merge import MatchMetric, MergeMethod, MergeOptions
from leanvision.largeimage.pipeline import (
    PipelineOptions,
    TilingOptions,
    run_pipeline,
)
from leanvision.largeimage.pipeline.tasks import merge_tiles
from leanvision.largeimage.readers import ReaderOptions, open_reader
from tests.largeimage.fakes import (
    BlobPredictor,
    PlainBlobPredictor,
    blob_card,
    blob_image,
    random_boxes,
    write_image,
)

INPUT_HW = (96, 128)  # model input (H, W): windows of 256 px keep its 4:3 shape at scale 0.5
TILING = TilingOptions(window=256, overlap=32)
SIZE = (1000, 700)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Three blob images: JPEG, tiled TIFF, JPEG; 25 tiles each."""
    root = tmp_path_factory.mktemp("blobs")
    suffixes = ["jpg", "tif", "jpg"]
    return [write_image(root / f"img{i}.{s}", blob_image(SIZE, random_boxes(SIZE, 20, seed=i), seed=i))
            for i, s in enumerate(suffixes)]


def by_hand(path: Path, tiling: TilingOptions, merge: MergeOptions) -> tuple:
    """The reference: read each tile, run the predictor on it alone, then the same merge."""
    predictor = BlobPredictor(blob_card(INPUT_HW))
    with open_reader(path) as reader:
        tiles = tiling.plan(reader.size, (INPUT_HW[1], INPUT_HW[0]))
        per_tile = [predictor([reader.read(*t.window, t.out_w, t.out_h)])[0] for t in tiles]
        size = reader.size
    return merge_tiles(per_tile, tiles, size, merge), len(tiles)


def assert_same(a, b) -> None:
    order_a = np.lexsort(np.c_[a.boxes, a.scores].T[::-1])
    order_b = np.lexsort(np.c_[b.boxes, b.scores].T[::-1])
    np.testing.assert_array_equal(a.boxes[order_a], b.boxes[order_b])
    np.testing.assert_array_equal(a.scores[order_a], b.scores[order_b])
    np.testing.assert_array_equal(a.labels[order_a], b.labels[order_b])


@pytest.mark.parametrize(("readers", "batch"), [(1, 1), (2, 3)])
def test_pipeline_equals_running_the_predictor_tile_by_tile(images, readers, batch):
    predictor = BlobPredictor(blob_card(INPUT_HW), requests=2)
    options = PipelineOptions(tiling=TILING, readers=readers, batch=batch)
    summary = run_pipeline(predictor, images, options=options)
    assert summary.images == 3 and not summary.failed and summary.tiles == 75
    assert list(summary.results) == images  # input order
    for path in images:
        expected, tiles = by_hand(path, TILING, options.merge)
        result = summary.results[path]
        assert (result.width, result.height, result.tiles) == (*SIZE, tiles)
        assert len(result.detections) == 20  # every blob once
        assert_same(result.detections, expected)
    if batch > 1:  # batches span image boundaries: only the very last one may be partial...
        assert sum(predictor.batch_sizes) == 75 and max(predictor.batch_sizes) == batch


def test_jpegs_read_in_bands_give_the_same_detections(images):
    pytest.importorskip("pyvips")
    jpegs = [path for path in images if path.suffix == ".jpg"]
    banded = PipelineOptions(tiling=TILING, readers=2, reader_options=ReaderOptions(band_above_mb=0))
    summaries = [run_pipeline(BlobPredictor(blob_card(INPUT_HW)), jpegs, options=options)
                 for options in (banded, PipelineOptions(tiling=TILING, readers=2))]
    for path in jpegs:
        assert len(summaries[0].results[path].detections) == 20
        assert_same(summaries[0].results[path].detections, summaries[1].results[path].detections)


def test_windows_past_the_border_are_padded_with_the_cards_pad_value(images):
    from leanvision.largeimage.pipeline.reading import ReadSpec

    card = blob_card(INPUT_HW)
    card = dataclasses.replace(card, input=dataclasses.replace(card.input, pad_value=114))
    spec = ReadSpec.for_card(PipelineOptions(tiling=TILING, reader_options=ReaderOptions(fill=0)), card)
    with spec.open(images[0]) as reader:
        tile = reader.read(SIZE[0] - 128, SIZE[1] - 96, 256, 192, INPUT_HW[1], INPUT_HW[0])  # half outside
    assert (tile[48:] == 114).all() and (tile[:, 64:] == 114).all()


def test_a_plain_predictor_gives_the_same_detections(images):
    staged = run_pipeline(BlobPredictor(blob_card(INPUT_HW)), images[:2], options=PipelineOptions(tiling=TILING))
    plain = run_pipeline(PlainBlobPredictor(blob_card(INPUT_HW)), images[:2],
                         options=PipelineOptions(tiling=TILING, batch=4, readers=1))
    for path in images[:2]:
        assert_same(plain.results[path].detections, staged.results[path].detections)


def test_max_detections_caps_each_merged_image_keeping_the_highest_scores(images):
    """`predict --max-det`: the cap is per image (25 tiles, 20 blobs here), after the merge."""
    merge = MergeOptions(max_detections=5)
    summary = run_pipeline(BlobPredictor(blob_card(INPUT_HW)), images[:1], options=PipelineOptions(tiling=TILING, merge=merge))
    full, _ = by_hand(images[0], TILING, MergeOptions())
    (dets,) = [r.detections for r in summary.results.values()]
    assert len(full) == 20 and len(dets) == 5
    np.testing.assert_array_equal(np.sort(dets.scores), np.sort(full.scores)[-5:])
    with pytest.raises(ConfigError, match="max_detections must be at least 1"):
        MergeOptions(max_detections=0)


def test_an_object_cut_by_a_tile_border_yields_one_detection(tmp_path):
    # One row of windows 256 px wide at x = 0, 192, 344 (overlap 64: keep regions meet at
    # x = 224). The blob is wider than the overlap: each tile sees part of it.
    blob = np.array([[180, 60, 270, 120]])
    path = write_image(tmp_path / "cut.tif", blob_image((600, 192), blob))
    tiling = TilingOptions(window=256, overlap=64)
    per_tile_only = by_hand(path, tiling, MergeOptions(threshold=0.999))[0]
    assert len(per_tile_only) == 2  # two partial boxes survive the keep regions
    merge = MergeOptions(method=MergeMethod.NMM, metric=MatchMetric.IOS, threshold=0.5)
    summary = run_pipeline(BlobPredictor(blob_card(INPUT_HW)), [path],
                           options=PipelineOptions(tiling=tiling, merge=merge, readers=1))
    (dets,) = [r.detections for r in summary.results.values()]
    assert len(dets) == 1
    np.testing.assert_allclose(dets.boxes[0], blob[0], atol=2)  # the whole blob again


def test_a_corrupt_file_is_reported_and_the_others_complete(images, tmp_path):
    good = write_image(tmp_path / "more.jpg", blob_image(SIZE, random_boxes(SIZE, 5, seed=9)))
    data = images[0].read_bytes()
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(data[: len(data) // 2])  # header fine, decode fails mid-way
    inputs = [images[0], corrupt, images[1], good, images[2]]
    out = tmp_path / "out"
    summary = run_pipeline(BlobPredictor(blob_card(INPUT_HW)), inputs, out_dir=out,
                           options=PipelineOptions(tiling=TILING, readers=2, batch=2))
    assert summary.images == 4
    assert [(f.path, "the file is truncated" in f.reason) for f in summary.failed] == [(corrupt, True)]
    assert sorted(p.name for p in out.glob("*.json")) == ["img0.json", "img1.json", "img2.json", "more.json", "summary.json"]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["failed"] == [{"path": str(corrupt), "reason": summary.failed[0].reason}]


def test_outputs_and_every_summary_field(images, tmp_path):
    out = tmp_path / "out"
    summary = run_pipeline(BlobPredictor(blob_card(INPUT_HW)), [images[1]], out_dir=out,
                           options=PipelineOptions(tiling=TILING, preview=True, preview_size=400))
    saved = json.loads((out / "summary.json").read_text())
    assert set(saved) == {"images", "failed", "tiles", "images_per_s", "tiles_per_s", "stage_seconds", "peak_rss_mb"}
    assert set(saved["stage_seconds"]) == {"read", "preprocess", "infer", "postprocess", "merge"}
    assert saved["images"] == 1 and saved["tiles"] == 25 and saved["failed"] == []
    assert saved["images_per_s"] > 0 and saved["tiles_per_s"] > 0 and saved["peak_rss_mb"] > 0
    assert all(v > 0 for v in saved["stage_seconds"].values())
    assert set(summary.stage_cpu_seconds) == set(saved["stage_seconds"])

    record = json.loads((out / "img1.json").read_text())
    assert (record["image"], record["width"], record["height"]) == (str(images[1]), *SIZE)
    dets = summary.results[images[1]].detections
    first = record["detections"][0]
    assert set(first) == {"bbox", "score", "category_id", "category_name"}
    assert (first["category_id"], first["category_name"]) == (1, "blob")
    best = int(np.argmax(dets.scores))
    x1, y1, x2, y2 = dets.boxes[best].tolist()
    np.testing.assert_allclose(first["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=0.01)
    lines = (out / "img1.csv").read_text().splitlines()
    assert lines[0] == "x,y,width,height,score,category_id,category_name" and len(lines) == 1 + len(dets)

    import cv2

    preview = cv2.imread(str(out / "img1.png"))
    assert preview.shape == (280, 400, 3)
    assert (preview[..., 2] > 200).sum() > 0  # red boxes drawn


def test_drop_border_and_fit_grid_reach_the_tiles(images):
    predictor = BlobPredictor(blob_card(INPUT_HW))
    dropped = run_pipeline(predictor, [images[0]], options=PipelineOptions(
        tiling=TilingOptions(window=256, drop_border=100)))
    # ceil((1000 - 200) / 256) = 4 columns, ceil((700 - 200) / 192) = 3 rows (vs 4 x 4 without)
    assert dropped.tiles == 12
    fitted = run_pipeline(predictor, [images[0]], options=PipelineOptions(tiling=TilingOptions(fit_grid=(2, 3))))
    assert fitted.tiles == 6 and fitted.results[images[0]].tiles == 6


def test_inputs_expand_folders_globs_and_list_files(images, tmp_path):
    folder = images[0].parent
    listed = tmp_path / "list.txt"
    listed.write_text(f"# slides\n{images[2]}\n\n{images[0].name}\n")
    (tmp_path / images[0].name).write_bytes(b"")  # relative entries resolve beside the list file
    assert expand_inputs([folder]) == sorted(images)
    assert expand_inputs([str(folder / "*.jpg"), images[0]]) == [images[0], images[2]]  # each once
    assert expand_inputs([listed]) == [images[2], tmp_path / images[0].name]
    for bad in ([tmp_path / "none"], [str(tmp_path / "*.png")], [tmp_path / "empty"]):
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(DataError):
            expand_inputs(bad)
    names = [Path("a/x.jpg"), Path("b/x.tif"), Path("c/x.jpg"), Path("x-2.png"), Path("d/X.JPG")]
    assert output_stems(names) == ["x", "x.tif", "x.jpg", "x-2", "X-3"]


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        TilingOptions(fit_grid=(2, 2), window=800)
    with pytest.raises(ConfigError):
        PipelineOptions(batch=0)
    with pytest.raises(ConfigError):
        PipelineOptions.from_dict({"engine": "spark"})
    with pytest.raises(ConfigError, match="reader must be one of"):
        PipelineOptions(reader="gimp")
    with pytest.raises(ConfigError, match="factory"):
        run_pipeline(BlobPredictor(blob_card(INPUT_HW)), ["x.jpg"], options=PipelineOptions(engine="ray"))
