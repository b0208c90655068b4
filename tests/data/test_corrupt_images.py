"""The corrupt-image campaign: every kind of odd or damaged file through `data check`,
training's dataset, the torch-free `read_image` and the `predict` pipeline.

One reading policy (`largeimage.readers.whole`): a file is read the same everywhere (same
pixels, same displayed size) or refused everywhere with the same one-line message; in batch
work it is skipped and counted, never a crash.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from leanvision.core import DataError, Detections
from leanvision.data.check import check
from leanvision.data.formats import DetectionSet, Format, ImageRecord, write_detection
from leanvision.data.images import read_rgb, read_size, verify_image
from leanvision.data.torch_dataset import DetectionDataset
from leanvision.largeimage.pipeline import PipelineOptions, TilingOptions, run_pipeline
from leanvision.runtime.preprocess import read_image
from tests.largeimage.fakes import PlainBlobPredictor, blob_card

W, H = 24, 16  # not square: an applied EXIF rotation shows in the size


def _rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), np.uint8)


def _png_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def _jpeg_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def hostile_png(path: Path, width: int, height: int) -> Path:
    """A valid tiny PNG whose IHDR declares width x height (CRC recomputed, so it parses)."""
    data = bytearray(_png_bytes(_rgb()))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def hostile_tiff(path: Path, side: int) -> Path:
    """A valid baseline RGB TIFF declaring side x side pixels in one small deflate strip
    (written by hand: tifffile would write the declared pixels)."""
    strip = zlib.compress(bytes(4096))
    ifd, bits = 8, 8 + 2 + 9 * 12 + 4
    data = bits + 6
    entries = [(256, 4, side), (257, 4, side), (258, 3, bits), (259, 3, 8), (262, 3, 2), (273, 4, data),
               (277, 3, 3), (278, 4, side), (279, 4, len(strip))]
    out = b"II*\x00" + struct.pack("<IH", ifd, len(entries))
    for tag, kind, value in entries:
        count = 3 if tag == 258 else 1
        out += struct.pack("<HHI", tag, kind, count) + struct.pack("<HH" if kind == 3 and count == 1 else "<I",
                                                                   *((value, 0) if kind == 3 and count == 1 else (value,)))
    path.write_bytes(out + struct.pack("<I", 0) + struct.pack("<HHH", 8, 8, 8) + strip)
    return path


def hostile_bmp(path: Path, side: int) -> Path:
    """A 24-bit BMP header declaring side x side pixels, followed by a few bytes."""
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, 16, 2835, 2835, 0, 0)
    path.write_bytes(struct.pack("<2sIHHI", b"BM", 70, 0, 0, 54) + info + bytes(16))
    return path


def hostile_webp(path: Path, side: int) -> Path:
    """A small extended (VP8X) WebP whose canvas size says side x side."""
    image = Image.fromarray(_rgb())
    exif = image.getexif()
    exif[0x0112] = 1
    image.save(path, format="WEBP", exif=exif)  # EXIF makes Pillow write the VP8X header
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"VP8X"
    data[24:30] = (side - 1).to_bytes(3, "little") * 2
    path.write_bytes(bytes(data))
    return path


def _pil(mode: str, fmt: str, **kwargs) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        image = Image.fromarray(_rgb())
        image = image.convert(mode) if mode != "RGBA" else Image.fromarray(np.dstack([_rgb(), np.full((H, W), 90, np.uint8)]))
        image.save(path, format=fmt, **kwargs)
    return write


def _write_16bit(path: Path) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(_rgb(), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)


def _exif_rotated(path: Path) -> None:
    image = Image.fromarray(_rgb())
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(path, format="JPEG", quality=95, exif=exif)


def assert_written(ok: bool) -> None:
    assert ok


# name -> (writer, displayed (w, h) if readable else a fragment of the one-line refusal)
CASES: dict[str, tuple[Callable[[Path], None], tuple[int, int] | str]] = {
    "ok.jpg": (lambda p: p.write_bytes(_jpeg_bytes(_rgb())), (W, H)),
    "empty.jpg": (lambda p: p.write_bytes(b""), "image file is empty"),
    "empty.png": (lambda p: p.write_bytes(b""), "image file is empty"),
    "truncated.jpg": (lambda p: p.write_bytes(_jpeg_bytes(_rgb())[:-300]), "the file is truncated"),
    "truncated.png": (lambda p: p.write_bytes(_png_bytes(_rgb())[:-200]), "the file is"),
    "text.png": (lambda p: p.write_bytes(b"this is not an image\n" * 4), "not an image file"),
    "png_named.jpg": (lambda p: p.write_bytes(_png_bytes(_rgb())), (W, H)),
    "jpeg_named.png": (lambda p: p.write_bytes(_jpeg_bytes(_rgb())), (W, H)),
    "16bit.png": (lambda p: _write_16bit(p), (W, H)),
    "16bit.tif": (lambda p: _write_16bit(p), (W, H)),
    "cmyk.jpg": (_pil("CMYK", "JPEG", quality=95), (W, H)),
    "cmyk.tif": (_pil("CMYK", "TIFF"), (W, H)),
    "palette.png": (_pil("P", "PNG"), (W, H)),
    "palette.tif": (_pil("P", "TIFF"), (W, H)),
    "alpha.png": (_pil("RGBA", "PNG"), (W, H)),
    "exif_rotated.jpg": (_exif_rotated, (H, W)),
    "hostile.png": (lambda p: hostile_png(p, 100000, 100000), "100000x100000"),
    "hostile.tif": (lambda p: hostile_tiff(p, 100000), "header declares a 100000x100000 image"),
    "hostile.bmp": (lambda p: hostile_bmp(p, 100000), "header declares a 100000x100000 image"),
    "hostile.webp": (lambda p: hostile_webp(p, 100000), "header declares a 100000x100000 image"),
    "ok.bmp": (lambda p: assert_written(cv2.imwrite(str(p), cv2.cvtColor(_rgb(), cv2.COLOR_RGB2BGR))), (W, H)),
    "ok.webp": (lambda p: Image.fromarray(_rgb()).save(p, format="WEBP", lossless=True), (W, H)),
}
BAD = sorted(n for n, (_, want) in CASES.items() if isinstance(want, str))
GOOD = sorted(n for n, (_, want) in CASES.items() if not isinstance(want, str))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corrupt")
    for name, (write, _) in CASES.items():
        write(root / name)
    return root


def _refusal(call: Callable[[], object]) -> str:
    with pytest.raises(DataError) as info:
        call()
    text = str(info.value)
    assert "\n" not in text
    return info.value.message


@pytest.mark.parametrize("name", BAD)
def test_an_unreadable_file_is_refused_everywhere_with_the_same_one_line_message(images, name):
    path = images / name
    want = CASES[name][1]
    messages = {
        "data check": verify_image(path),
        "training": _refusal(lambda: read_rgb(path)),
        "read_image": _refusal(lambda: read_image(path, 0)),
    }
    assert len(set(messages.values())) == 1, messages
    assert want in messages["data check"]
    # Library jargon is translated: no libjpeg / OpenCV / libvips vocabulary reaches the user.
    for jargon in ("tjDecompress", "OpenCV(", "VipsForeignLoad", "vips_tracked", "libpng", "Traceback"):
        assert jargon not in messages["data check"]


@pytest.mark.parametrize("name", GOOD)
def test_a_readable_file_reads_the_same_everywhere(images, name):
    path = images / name
    assert verify_image(path) is None
    assert read_size(path) == CASES[name][1]
    trained = read_rgb(path)
    assert trained.dtype == np.uint8 and (trained.shape[1], trained.shape[0]) == CASES[name][1]
    np.testing.assert_array_equal(read_image(path, 0), trained)


@pytest.mark.parametrize("name", ["16bit.png", "16bit.tif", "cmyk.tif", "palette.png", "palette.tif", "alpha.png"])
def test_converted_pixels_are_the_colours_of_the_image(images, name):
    # Lossless files of `_rgb()`: 16-bit scaled back, CMYK, palette and alpha converted to RGB.
    got = read_rgb(images / name).astype(int)
    if name.startswith("palette"):
        assert np.abs(got - _rgb()).mean() < 40  # a palette quantises to 256 colours
    else:
        np.testing.assert_array_equal(got, _rgb())


def test_exif_orientation_is_applied_as_predict_applies_it(images):
    stored = np.asarray(Image.open(images / "exif_rotated.jpg").convert("RGB"))
    displayed = read_rgb(images / "exif_rotated.jpg")
    # Orientation 6: the stored image turned 90 degrees clockwise (JPEG, so within noise).
    assert np.abs(displayed.astype(int) - np.rot90(stored, k=-1).astype(int)).mean() < 2


def test_data_check_reports_each_bad_file_and_passes_the_others(images, tmp_path):
    records = [ImageRecord(name, 0, 0, Detections.from_boxes(np.array([[1, 1, 8, 8]], np.float32), [0]), i)
               for i, name in enumerate(sorted(CASES), start=1)]
    root = tmp_path / "set"
    write_detection(DetectionSet(("cell",), records, images), root, Format.COCO, copy_images=True)
    (report,) = check(root)
    found = {Path(issue.path).name: issue.reason for issue in report.issues}
    assert set(found) == set(BAD), found
    for name in BAD:
        assert CASES[name][1] in found[name]


def test_training_skips_and_counts_every_unreadable_image(images):
    names = sorted(CASES)
    records = [ImageRecord(name, 0, 0, Detections.from_boxes(np.array([[1, 1, 8, 8]], np.float32), [0]), i)
               for i, name in enumerate(names)]
    dataset = DetectionDataset(DetectionSet(("cell",), records, images), augment=None, input_size=(32, 32), seed=0)
    sources = {names[dataset[i][2]] for i in range(len(dataset))}
    assert sources <= set(GOOD)
    assert dataset.skipped == len(BAD) and sorted(dataset.skipped_files) == BAD


def test_predict_fails_exactly_the_unreadable_images_naming_each(images):
    card = blob_card((32, 32))
    options = PipelineOptions(tiling=TilingOptions(window=32), readers=1, batch=4)
    summary = run_pipeline(PlainBlobPredictor(card), [images], options=options)
    failed = {Path(f.path).name: f.reason for f in summary.failed}
    assert set(failed) == set(BAD), failed
    for name in BAD:
        assert failed[name] == verify_image(images / name)  # the same words as data check
    sizes = {Path(p).name: (r.width, r.height) for p, r in summary.results.items()}
    assert sizes == {name: CASES[name][1] for name in GOOD}


def test_data_stats_of_a_classification_set_skips_and_names_every_unreadable_image(images, tmp_path):
    # `data stats` is batch work: an image whose size cannot be read is left out of the
    # aspect-ratio statistics and named, the command exits 1; it never aborts the whole set.
    import json

    from tests.helpers import run_cli

    root = tmp_path / "folder"
    for i, name in enumerate(sorted(CASES)):
        (root / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"class{i % 2}" / name).write_bytes((images / name).read_bytes())
    code, out, err = run_cli(["data", "stats", str(root), "--out", str(tmp_path / "stats")])
    assert code == 1, (out, err)
    (stats,) = json.loads((tmp_path / "stats" / "stats.json").read_text()).values()
    # stats reads headers only (as `data convert` does): a file whose header reads is described.
    headless = set()
    for name in BAD:
        try:
            read_size(images / name)
        except DataError:
            headless.add(name)
    left_out = {Path(line.split(": ", 1)[0]).name: line for line in stats["left_out"]}
    assert set(left_out) == headless and headless, left_out
    for name in headless:
        assert CASES[name][1] in left_out[name] and f"left out: {left_out[name]}" in err
    assert stats["images"] == len(CASES)
    assert stats["image_aspect_ratio_w_over_h"]["n"] == len(CASES) - len(headless)


def test_a_large_tiled_tiff_is_verified_in_bands_down_to_its_last_tile(tmp_path, monkeypatch):
    """`data check` reads a tiled TIFF without reduced levels at full resolution: over the
    band bound it goes in bands of rows (a sparse 100000 x 100000 one must not exhaust
    memory), every row still read, so damage in the last tile is found."""
    tifffile = pytest.importorskip("tifffile")
    import leanvision.largeimage.readers.whole as whole

    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 255, (1536, 2048, 3), np.uint8), tile=(256, 256),
                     compression="zlib", photometric="rgb")
    monkeypatch.setattr(whole, "_VERIFY_BAND_MB", 1)
    reads: list[int] = []
    opened = whole.open_reader

    def recording(*args, **kwargs):
        reader = opened(*args, **kwargs)
        read = reader.read

        def counted(x, y, w, h, *rest):
            reads.append(h)
            return read(x, y, w, h, *rest)

        reader.read = counted
        return reader

    monkeypatch.setattr(whole, "open_reader", recording)
    assert verify_image(path) is None
    assert len(reads) > 1 and sum(reads) == 1536 and max(reads) * 2048 * 3 <= 1 << 20
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[-1], tif.pages[0].databytecounts[-1]
    data = bytearray(path.read_bytes())
    data[offset:offset + count] = b"\xff" * count
    path.write_bytes(bytes(data))
    assert verify_image(path) is not None
