"""Readers: same pixels as a full decode + crop + resize, EXIF orientation as cv2, buffers
reused, only the needed tiles decoded, one-line DataErrors naming the file.

Tolerances (grey levels, |reader - reference| over all pixels and channels):
- reduced decodes (JPEG DCT scaling M/8, pyramid levels) on windows aligned to the reduced
  grid: mean <= 0.8 (measured 0.3-0.55; PITFALLS.md: 0.31 on a 12000 px JPEG), 99th
  percentile <= 8 (chroma upsampling at an image edge next to the padding of a JPEG tile);
- windows not aligned to the reduced grid are cut at the nearest decoded pixel: mean <= 2.0
  (measured 1.4 on this high-frequency texture);
- GDAL (rasterio) decodes JPEG with an older libjpeg: same bounds;
- full-resolution reads of lossless data: exact.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leanvision.core.errors import ConfigError, DataError
from leanvision.largeimage.grid import plan_grid
from leanvision.largeimage.readers import (
    PixelLimitError,
    ReaderKind,
    ReaderOptions,
    Scratch,
    default_kinds,
    open_reader,
)
from tests.largeimage.images import (
    HEIGHT,
    WIDTH,
    cv2_rgb,
    reference,
    textured,
    write_jpeg,
    write_pyramid,
)

JPEG_KINDS = ["simplejpeg", "opencv", "pillow", "pyvips", "rasterio"]
TIFF_KINDS = ["tifffile", "pyvips", "rasterio", "openslide", "opencv", "pillow"]
PYRAMID_KINDS = ["tifffile", "pyvips", "rasterio", "openslide"]

# (window x, y, w, h), (out w, out h): windows aligned to the 1/2 and 1/4 grids.
ALIGNED = [
    ((0, 0, WIDTH, HEIGHT), (WIDTH // 2, HEIGHT // 2)),
    ((96, 48, 256, 256), (128, 128)),
    ((200, 120, 400, 320), (100, 80)),
    ((13, 9, 200, 150), (200, 150)),  # full scale: no reduction, any position
    ((10, 10, 100, 100), (250, 250)),  # enlarged
]


def diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.mean()), float(np.percentile(d, 99))


def lib_or_skip(kind: str) -> None:
    module = {"pillow": "PIL", "opencv": "cv2"}.get(kind, kind)
    pytest.importorskip(module)


@pytest.mark.parametrize("kind", JPEG_KINDS)
def test_jpeg_readers_match_full_decode_crop_resize(files, kind):
    lib_or_skip(kind)
    full = cv2_rgb(files["jpeg"])
    with open_reader(files["jpeg"], kind=kind) as reader:
        assert reader.size == (WIDTH, HEIGHT)
        for window, out in ALIGNED:
            mean, p99 = diff(reader.read(*window, *out), reference(full, window, out))
            assert mean <= 0.8 and p99 <= 8, (window, out, mean, p99)
        window, out = (101, 37, 300, 200), (111, 74)  # DCT scale 3/8, unaligned
        assert diff(reader.read(*window, *out), reference(full, window, out))[0] <= 2.0


@pytest.mark.parametrize("kind", TIFF_KINDS)
def test_tiff_readers_match_at_full_resolution(files, kind):
    lib_or_skip(kind)
    import tifffile

    full = tifffile.imread(files["tiff_jpeg"])
    options = ReaderOptions(reduced=False)
    with open_reader(files["tiff_jpeg"], kind=kind, options=options) as reader:
        for window, out in ALIGNED[1:]:
            mean, p99 = diff(reader.read(*window, *out), reference(full, window, out))
            exact = kind != "rasterio"  # GDAL's own libjpeg decodes differently
            assert (mean, p99) == (0.0, 0.0) if exact else mean <= 0.8 and p99 <= 8, (window, mean, p99)


@pytest.mark.parametrize("kind", PYRAMID_KINDS)
def test_pyramid_readers_use_reduced_levels_with_the_same_pixels(files, image, kind):
    lib_or_skip(kind)
    with open_reader(files["pyramid"], kind=kind) as reader:
        for window, out in ALIGNED:
            mean, p99 = diff(reader.read(*window, *out), reference(image, window, out))
            assert mean <= 0.8 and p99 <= 8, (window, out, mean, p99)


def test_tiff_reader_decodes_jpeg_tiles_at_reduced_dct_scale(files):
    import tifffile

    full = tifffile.imread(files["tiff_jpeg"])
    with open_reader(files["tiff_jpeg"], kind="tifffile") as reader:
        window, out = (128, 128, 256, 256), (128, 128)  # exactly 2x2 tiles at 1/2
        mean, p99 = diff(reader.read(*window, *out), reference(full, window, out))
        assert reader.segments_decoded == 4
        assert {a.shape for a in reader._cache.values()} == {(64, 64, 3)}  # 128 px tiles at 1/2
    assert mean <= 0.8 and p99 <= 8


def test_tiff_reader_decodes_only_the_needed_tiles(files):
    with open_reader(files["tiff_jpeg"], kind="tifffile", options=ReaderOptions(reduced=False)) as reader:
        reader.read(130, 10, 100, 100, 100, 100)  # inside tile (row 0, col 1)
        assert reader.segments_decoded == 1
        reader.read(100, 100, 100, 100, 100, 100)  # tiles (0,0) (0,1) (1,0) (1,1): 3 new
        assert reader.segments_decoded == 4
        reader.read(100, 100, 100, 100, 50, 50)  # cached
        assert reader.segments_decoded == 4
        assert set(reader._cache) == {(0, s, 8) for s in (0, 1, 6, 7)}  # 6 tiles per row


def test_tiff_reader_picks_the_level_closest_above_the_needed_scale(files):
    with open_reader(files["pyramid"], kind="tifffile") as reader:
        reader.read(0, 0, 512, 256, 128, 64)  # needs 1/4: level 2 (166x122), 2x1 tiles
        assert {key[0] for key in reader._cache} == {2}
        reader.read(0, 0, 512, 256, 140, 64)  # needs more than 1/4 (beyond the 1% slack): level 1
        assert {key[0] for key in reader._cache} == {1, 2}


def test_tiff_tile_cache_is_bounded(files):
    options = ReaderOptions(reduced=False, tile_cache_mb=0)  # keeps only the last tile
    with open_reader(files["tiff_jpeg"], kind="tifffile", options=options) as reader:
        reader.read(0, 0, 300, 300, 100, 100)
        assert len(reader._cache) == 1


def test_simplejpeg_decodes_once_at_the_scale_the_grid_needs(files):
    w, h = WIDTH, HEIGHT
    with open_reader(files["jpeg"]) as reader:
        assert reader.kind is ReaderKind.SIMPLEJPEG
        for tile in plan_grid(w, h, window=200, out_size=100, overlap=40):
            reader.read(*tile.window, tile.out_w, tile.out_h)
        assert reader.decodes == 1
        assert reader.decoded_size == ((w + 1) // 2, (h + 1) // 2)


def test_jpeg_memory_bound_is_a_data_error(files):
    options = ReaderOptions(max_decode_mb=0)
    with open_reader(files["jpeg"], options=options) as reader, pytest.raises(DataError, match="max_decode_mb") as err:
        reader.read(0, 0, 100, 100, 50, 50)
    assert err.value.path == str(files["jpeg"])


@pytest.mark.parametrize("kind", ["simplejpeg", "tifffile", "opencv", "pyvips"])
def test_output_buffer_is_filled_and_returned(files, kind):
    lib_or_skip(kind)
    path = files["tiff_jpeg"] if kind == "tifffile" else files["jpeg"]
    buffer = np.zeros((100, 100, 3), np.uint8)
    with open_reader(path, kind=kind) as reader:
        first = reader.read(0, 0, 200, 200, 100, 100, out=buffer)
        copy = first.copy()
        second = reader.read(200, 200, 200, 200, 100, 100, out=buffer)
    assert first is buffer and second is buffer
    assert not np.array_equal(copy, second)
    with pytest.raises(ValueError, match="out must be"), open_reader(path, kind=kind) as reader:
        reader.read(0, 0, 10, 10, 5, 5, out=np.zeros((5, 5, 3), np.float32))


def test_scratch_buffer_is_shared_across_images(tmp_path, files):
    other = write_jpeg(tmp_path / "other.jpg", textured(seed=1))
    scratch = Scratch()
    with open_reader(files["jpeg"], scratch=scratch) as first:
        first.read(0, 0, 200, 200, 100, 100)
        held = first._image
    with open_reader(other, scratch=scratch) as second:
        second.read(0, 0, 200, 200, 100, 100)
        assert np.shares_memory(held, second._image)


@pytest.mark.parametrize("kind", JPEG_KINDS)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_cv2(tmp_path, kind, orientation):
    lib_or_skip(kind)
    stored = textured(96, 64, seed=orientation)
    path = write_jpeg(tmp_path / f"o{orientation}.jpg", stored, orientation=orientation)
    expected = cv2_rgb(path)  # cv2.imread applies the EXIF orientation
    with open_reader(path, kind=kind) as reader:
        w, h = reader.size
        assert (h, w) == expected.shape[:2]
        assert diff(reader.read(0, 0, w, h, w, h), expected)[0] <= 0.8
        window = (5, 7, 40, 24)
        assert diff(reader.read(*window, 40, 24), reference(expected, window, (40, 24)))[0] <= 0.8
        half = reader.read(0, 0, w, h, w // 2, h // 2)  # reduced decode, then oriented
        assert diff(half, reference(expected, (0, 0, w, h), (w // 2, h // 2)))[0] <= 0.8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_tag_is_applied_as_exif(tmp_path, orientation):
    import tifffile
    from PIL import Image, ImageOps

    stored = textured(96, 64, seed=orientation)
    path = tmp_path / f"o{orientation}.tif"
    tifffile.imwrite(path, stored, tile=(32, 32), photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    with Image.open(path) as im:  # Pillow's own EXIF transposition, the independent reference
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    for kind in ("tifffile", "pyvips", "rasterio"):
        with open_reader(path, kind=kind) as reader:
            w, h = reader.size
            assert np.array_equal(reader.read(0, 0, w, h, w, h), expected), kind
    if orientation != 1:  # cv2 flips such TIFFs partly by itself: refused
        with pytest.raises(DataError, match="mis-applies TIFF orientation"):
            open_reader(path, kind="opencv")


@pytest.mark.parametrize("kind", ["simplejpeg", "tifffile", "opencv", "openslide"])
def test_windows_past_the_border_are_padded(files, image, kind):
    lib_or_skip(kind)
    path = files["pyramid"] if kind in ("tifffile", "openslide") else files["jpeg"]
    options = ReaderOptions(fill=7)
    with open_reader(path, kind=kind, options=options) as reader:
        out = reader.read(WIDTH - 100, HEIGHT - 60, 200, 120, 100, 60)  # half outside each way
    assert (out[30:] == 7).all() and (out[:, 50:] == 7).all()
    full = image if path.suffix == ".tif" else cv2_rgb(path)
    inside = reference(full, (WIDTH - 100, HEIGHT - 60, 100, 60), (50, 30))
    assert diff(out[:30, :50], inside)[0] <= 0.8
    with open_reader(path, kind=kind) as reader:
        assert (reader.read(-50, -50, 50, 50, 10, 10) == 0).all()  # wholly outside


def test_corrupt_truncated_missing_files_raise_data_errors(tmp_path, files):
    garbage = tmp_path / "garbage.jpg"
    noise = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    garbage.write_bytes(b"\xff\xd8\xff\xe0" + noise)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(files["jpeg"].read_bytes()[:-3000])
    truncated_tiff = tmp_path / "truncated.tif"
    truncated_tiff.write_bytes(files["tiff_jpeg"].read_bytes()[:-5000])
    not_image = tmp_path / "text.png"
    not_image.write_text("not an image")
    cases = [(garbage, k) for k in JPEG_KINDS] + [(truncated, k) for k in JPEG_KINDS]
    cases += [(truncated_tiff, "tifffile"), (not_image, None), (tmp_path / "missing.jpg", None)]
    for path, kind in cases:
        with pytest.raises(DataError) as err, open_reader(path, kind=kind) as reader:
            reader.read(0, 0, 64, 64, 32, 32)
        assert err.value.path == str(path), (path, kind)
        assert "\n" not in str(err.value)


def test_jpeg_side_limit(tmp_path, files):
    data = bytearray(files["jpeg"].read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 7 : sof + 9] = (65535).to_bytes(2, "big")  # width field of the frame header
    path = tmp_path / "wide.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="at most 65500 px"):
        open_reader(path)


def test_opencv_pixel_limit_refuses_or_falls_back(files, monkeypatch):
    monkeypatch.setenv("OPENCV_IO_MAX_IMAGE_PIXELS", str(WIDTH * HEIGHT - 1))
    with pytest.raises(PixelLimitError, match="OpenCV refuses"):
        open_reader(files["png"], kind="opencv")
    with open_reader(files["png"]) as reader:  # auto: next candidate
        assert reader.kind is ReaderKind.PYVIPS


def test_pillow_pixel_limit_refuses(files, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", WIDTH * HEIGHT // 4)
    with pytest.raises(PixelLimitError, match="Pillow refuses"):
        open_reader(files["jpeg"], kind="pillow")


def test_default_reader_by_format(files, tmp_path):
    assert default_kinds(files["jpeg"])[0] is ReaderKind.SIMPLEJPEG
    assert default_kinds(files["pyramid"])[0] is ReaderKind.TIFFFILE
    assert default_kinds(files["png"])[0] is ReaderKind.OPENCV
    svs = tmp_path / "slide.svs"
    svs.write_bytes(files["pyramid"].read_bytes())
    assert default_kinds(svs)[0] is ReaderKind.OPENSLIDE
    disguised = tmp_path / "jpeg.png"  # by content, not suffix
    disguised.write_bytes(files["jpeg"].read_bytes())
    assert default_kinds(disguised)[0] is ReaderKind.SIMPLEJPEG
    with pytest.raises(ConfigError, match="unknown reader kind"):
        open_reader(files["jpeg"], kind="imageio")


def test_closed_reader_refuses_reads(files):
    reader = open_reader(files["jpeg"])
    reader.close()
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read(0, 0, 10, 10, 10, 10)


def test_reader_modules_import_no_image_library():
    code = (
        "import sys; import leanvision.largeimage.readers, leanvision.largeimage.grid, "
        "leanvision.largeimage.merge;"
        "heavy = {'simplejpeg', 'tifffile', 'imagecodecs', 'pyvips', 'openslide', 'rasterio', 'PIL', 'cv2'};"
        "loaded = heavy & set(sys.modules); assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_pyramid_fixture_is_read_as_three_levels(files):
    with open_reader(files["pyramid"], kind="tifffile") as reader:
        assert reader.level_sizes == [(664, 488), (332, 244), (166, 122)]


def test_reader_on_path_objects_and_strings(files):
    with open_reader(str(files["jpeg"])) as a, open_reader(Path(files["jpeg"])) as b:
        assert a.size == b.size


def test_write_pyramid_helper_roundtrip(tmp_path):
    # The fixture writer itself: level 0 is lossless in LZW, so reads at full scale are exact.
    image = textured(130, 70, seed=3)
    path = write_pyramid(tmp_path / "p.tif", image, levels=2, compression="lzw")
    with open_reader(path, options=ReaderOptions(reduced=False)) as reader:
        assert np.array_equal(reader.read(0, 0, 130, 70, 130, 70), image)
