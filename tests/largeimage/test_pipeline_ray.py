"""The Ray engine gives the local engine's results, split by image and by tile band."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leanvision.core import ModelError
from leanvision.largeimage.pipeline import (
    EngineKind,
    PipelineOptions,
    RayOptions,
    TilingOptions,
    run_pipeline,
)
from tests.largeimage.fakes import BlobFactory, BrokenFactory, blob_image, random_boxes, write_image

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[2]
FACTORY = BlobFactory((96, 128))
TILING = TilingOptions(window=256, overlap=32)


@pytest.fixture(scope="module")
def local_ray():
    """Ray in-process with 2 CPUs; actors import the test's fake predictor from the repo."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("ray_blobs")
    size = (900, 640)
    return [write_image(root / f"img{i}.{s}", blob_image(size, random_boxes(size, 12, seed=i), seed=i))
            for i, s in enumerate(["jpg", "tif", "jpg"])]


def _same(a, b) -> bool:
    key = lambda d: np.lexsort(np.c_[d.boxes, d.scores].T[::-1])  # noqa: E731
    return (np.array_equal(a.boxes[key(a)], b.boxes[key(b)]) and np.array_equal(a.scores[key(a)], b.scores[key(b)])
            and np.array_equal(a.labels[key(a)], b.labels[key(b)]))


@pytest.mark.parametrize("count", [3, 1], ids=["by-image", "by-band"])
def test_ray_engine_equals_local_engine(local_ray, images, tmp_path, count):
    inputs = images[:count]
    local = run_pipeline(FACTORY, inputs, options=PipelineOptions(tiling=TILING, readers=1))
    options = PipelineOptions(tiling=TILING, batch=2, engine=EngineKind.RAY, ray=RayOptions(actors=2))
    out = tmp_path / "out"
    distributed = run_pipeline(FACTORY, inputs, options=options, out_dir=out)
    assert distributed.images == count and not distributed.failed
    assert distributed.tiles == local.tiles
    for path in inputs:
        assert _same(distributed.results[path].detections, local.results[path].detections)
        assert (out / f"{path.stem}.json").is_file()
    assert distributed.stage_seconds["infer"] > 0 and distributed.peak_rss_mb > 0


def test_ray_engine_reports_a_corrupt_file(local_ray, images, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage" * 10)
    options = PipelineOptions(tiling=TILING, engine=EngineKind.RAY, ray=RayOptions(actors=2))
    summary = run_pipeline(FACTORY, [images[0], bad], options=options)
    assert summary.images == 1 and [f.path for f in summary.failed] == [bad]


def test_a_model_that_fails_to_load_in_the_actors_is_a_one_line_error(local_ray, images):
    options = PipelineOptions(tiling=TILING, engine=EngineKind.RAY, ray=RayOptions(actors=1))
    with pytest.raises(ModelError, match="model file is empty"):
        run_pipeline(BrokenFactory(), [images[0]], options=options)


def test_fewer_images_than_actors_split_into_tile_bands(images):
    from leanvision.largeimage.pipeline.collect import ImageBook
    from leanvision.largeimage.pipeline.distributed import plan_units
    from leanvision.largeimage.pipeline.reading import ReadSpec

    spec = ReadSpec(PipelineOptions(tiling=TILING), (128, 96))
    book = ImageBook(images[:2], ["a", "b"], lambda i, image: None)
    units = plan_units(images[:2], 5, spec, book)  # 4 x 4 tiles each, 3 bands each
    assert [(u.image_id, u.start, u.stop, u.parts) for u in units] == [
        (0, 0, 5, 3), (0, 5, 11, 3), (0, 11, 16, 3), (1, 0, 5, 3), (1, 5, 11, 3), (1, 11, 16, 3)]
    assert len(plan_units(images, 2, spec, book)) == 3 and plan_units(images, 2, spec, book)[0].stop is None
