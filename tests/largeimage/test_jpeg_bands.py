"""Banded JPEG decoding: a JPEG too large to decode whole is read in bands of rows with the
same pixels as the whole decode, holding only the rows under the current row of windows."""

from __future__ import annotations

import numpy as np
import pytest

from leanvision.core.errors import ConfigError, DataError
from leanvision.largeimage.grid import plan_grid
from leanvision.largeimage.readers import ReaderOptions, open_reader
from leanvision.largeimage.readers.bands import STEP
from tests.largeimage.images import cv2_rgb, reference, textured, write_jpeg

pytest.importorskip("pyvips")
pytest.importorskip("simplejpeg")

BANDS = ReaderOptions(band_above_mb=0)  # every read is banded
TALL_W, TALL_H = 264, 1560  # 1/2 scale: 132 x 780 rows; not multiples of 16 px MCUs


@pytest.fixture(scope="module")
def tall(tmp_path_factory: pytest.TempPathFactory):
    return write_jpeg(tmp_path_factory.mktemp("bands") / "tall.jpg", textured(TALL_W, TALL_H, seed=3))


def read_grid(path, options, **grid):
    with open_reader(path, options=options) as reader:
        tiles, held = [], []
        for tile in plan_grid(*reader.size, **grid):
            tiles.append(reader.read(*tile.window, tile.out_w, tile.out_h))
            held.append(0 if reader.bands is None else reader.bands.count)
        return tiles, held, reader.bands, reader.decoded_size


@pytest.mark.parametrize(("window", "out", "overlap"), [(128, 64, 32), (200, 50, 0), (96, 96, 20)])
def test_banded_grid_equals_the_whole_decode_and_holds_one_row_of_windows(tall, window, out, overlap):
    whole, _, no_bands, decoded = read_grid(tall, ReaderOptions(), window=window, out_size=out, overlap=overlap)
    assert no_bands is None and decoded is not None  # the default decodes this small image whole
    banded, held, bands, decoded = read_grid(tall, BANDS, window=window, out_size=out, overlap=overlap)
    assert decoded is None and bands.restarts == 0  # never decoded whole, never went back
    for a, b in zip(banded, whole, strict=True):
        d = np.abs(a.astype(np.int16) - b)
        assert d.mean() <= 0.2, d.mean()  # equal but at the bottom edge (libvips drops a row)
    rows_per_window = round(window * bands.eighths / 8)
    assert max(held) <= rows_per_window + STEP
    assert max(held) < bands.size[1] / 3  # a fraction of the image, not all of it


def test_a_read_above_the_rows_held_restarts_the_decode(tall):
    full = cv2_rgb(tall)
    windows = [(0, 1200, 200, 200), (40, 0, 200, 200), (40, 600, 200, 200)]
    with open_reader(tall, options=BANDS) as reader:
        for window in windows:
            got = reader.read(*window, 100, 100)
            assert np.abs(got.astype(np.int16) - reference(full, window, (100, 100))).mean() <= 0.8
        assert reader.bands.restarts == 1  # the second read went back up


@pytest.mark.parametrize("orientation", range(1, 9))
def test_bands_only_for_orientations_that_keep_rows_in_order(tmp_path, orientation):
    path = write_jpeg(tmp_path / f"o{orientation}.jpg", textured(96, 64, seed=orientation), orientation=orientation)
    expected = cv2_rgb(path)  # cv2.imread applies the EXIF orientation
    with open_reader(path, options=BANDS) as reader:
        w, h = reader.size
        half = reader.read(0, 0, w, h, w // 2, h // 2)
        assert (reader.bands is not None) == (orientation in (1, 2))
    assert np.abs(half.astype(np.int16) - reference(expected, (0, 0, w, h), (w // 2, h // 2))).mean() <= 0.8


def test_greyscale_jpeg_in_bands_gives_three_equal_channels(tmp_path):
    import cv2

    grey = textured(200, 300, seed=5)[..., 1]
    path = tmp_path / "grey.jpg"
    cv2.imwrite(str(path), grey)
    with open_reader(path, options=BANDS) as reader:
        got = reader.read(0, 0, 200, 300, 100, 150)
        assert reader.bands is not None
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    expected = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (100, 150), interpolation=cv2.INTER_AREA)
    assert np.abs(got[..., 0].astype(np.int16) - expected).mean() <= 0.8


def test_truncated_jpeg_in_bands_is_a_data_error_naming_the_file(tmp_path, tall):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(tall.read_bytes()[:-4000])
    with pytest.raises(DataError) as err, open_reader(truncated, options=BANDS) as reader:
        for tile in plan_grid(*reader.size, window=128, out_size=64):
            reader.read(*tile.window, tile.out_w, tile.out_h)
    assert err.value.path == str(truncated) and "\n" not in str(err.value)


def enlarged_jpeg(path, source, side):
    """`source`'s JPEG with its frame header (SOF0) saying side x side: the scan data ends long
    before the rows the header declares, but the file still ends with an EOI marker."""
    data = bytearray(source.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("reader", [{"options": BANDS}, {"kind": "pyvips"}])
def test_a_jpeg_header_declaring_more_rows_than_its_data_is_truncated_in_bands_too(tmp_path, tall, reader):
    """libvips only warns of scan data ending early, and fail_on="error" passed the missing
    rows as grey: `predict` read such a file above band_above_mb while `data check` refused it."""
    from leanvision.data.images import verify_image

    path = enlarged_jpeg(tmp_path / "enlarged.jpg", tall, 2000)
    with pytest.raises(DataError) as err, open_reader(path, **reader) as opened:
        for tile in plan_grid(*opened.size, window=500, out_size=250):
            opened.read(*tile.window, tile.out_w, tile.out_h)
    assert err.value.message == verify_image(path) == "the file is truncated"


def test_band_bound_must_not_be_negative():
    with pytest.raises(ConfigError, match="band_above_mb=-1"):
        ReaderOptions(band_above_mb=-1)
