"""Session fixtures: the reader test images, written once (JPEG, TIFF pyramids, PNG)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.largeimage.images import textured, write_jpeg, write_pyramid


@pytest.fixture(scope="session")
def image() -> np.ndarray:
    return textured()


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory, image: np.ndarray) -> dict[str, Path]:
    """The test images, written once per session."""
    root = tmp_path_factory.mktemp("largeimage")
    paths = {
        "jpeg": write_jpeg(root / "image.jpg", image),
        "tiff_jpeg": write_pyramid(root / "jpeg_tiles.tif", image, levels=1, compression="jpeg", compressionargs={"level": 95}),
        "pyramid": write_pyramid(root / "pyramid.tif", image, levels=3, compression="lzw"),
        "png": root / "image.png",
    }
    cv2.imwrite(str(paths["png"]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return paths
