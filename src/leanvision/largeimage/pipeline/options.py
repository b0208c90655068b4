"""The pipeline's options: one frozen dataclass per concern, plain data when saved."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from leanvision.core.config import Config
from leanvision.core.errors import ConfigError
from leanvision.largeimage.grid import Tile, plan_fit_grid, plan_grid
from leanvision.largeimage.merge import MergeOptions
from leanvision.largeimage.readers import ReaderKind, ReaderOptions


class EngineKind(enum.StrEnum):
    LOCAL = "local"  # reader processes + shared memory + async inference in this process
    RAY = "ray"  # Ray actors holding the model, work split by image or tile band


class StartMethod(enum.StrEnum):
    """How reader processes start. Never `fork`: the caller may already run threads
    (inference engines, progress bars) and a forked child inherits their locks held."""

    FORKSERVER = "forkserver"
    SPAWN = "spawn"


@dataclass(frozen=True)
class TilingOptions(Config):
    """How each image is cut into model inputs (see `largeimage.grid`).

    Attributes:
        window: window width in level-0 pixels; the height keeps the model input's aspect
            ratio, so tiles are scaled, never stretched. None: the model card's window,
            input / card.input.scale (scale 1 when the card has no scale). S0 used
            1600 px windows for an 800 px model.
        overlap: pixels neighbouring windows share at least.
        drop_border: up to this many pixels of each image border may be left unread when
            that saves windows (S0).
        fit_grid: (rows, cols): resize each image so that it splits exactly into this many
            model inputs (S3's 2x2 for 576x768 inputs on images up to 2048 px: no strip of
            the image wasted, no overlap); `window`, `overlap` and `drop_border` then do not
            apply.
    """

    window: int | None = None
    overlap: int = 0
    drop_border: int = 0
    fit_grid: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.window is not None and self.window <= 0:
            raise ConfigError(f"window must be positive, got {self.window}")
        if self.fit_grid is not None and min(self.fit_grid) <= 0:
            raise ConfigError(f"fit_grid needs positive rows and columns, got {self.fit_grid}")
        if self.fit_grid is not None and (self.window is not None or self.overlap or self.drop_border):
            raise ConfigError("fit_grid splits the whole image: it takes no window, overlap or drop_border")

    def window_size(self, input_wh: tuple[int, int], default_wh: tuple[int, int] | None = None) -> tuple[int, int]:
        """(w, h) of a window in level-0 pixels for a model input of `input_wh`; without a
        `window` option, `default_wh` (the card's window) or else the input itself."""
        if self.window is None:
            return default_wh or input_wh
        return self.window, max(1, round(self.window * input_wh[1] / input_wh[0]))

    def plan(self, image_wh: tuple[int, int], input_wh: tuple[int, int],
             default_window_wh: tuple[int, int] | None = None) -> list[Tile]:
        """The tiles of an image of `image_wh` (w, h) for a model input of `input_wh` (w, h)."""
        if self.fit_grid is not None:
            rows, cols = self.fit_grid
            return plan_fit_grid(*image_wh, rows=rows, cols=cols, out_size=input_wh)
        return plan_grid(*image_wh, window=self.window_size(input_wh, default_window_wh), out_size=input_wh,
                         overlap=self.overlap, drop_border=self.drop_border)


@dataclass(frozen=True)
class RayOptions(Config):
    """Where and how wide the Ray engine runs.

    Attributes:
        address: a running cluster ("ray://head:10001" or "auto"); None starts a local
            Ray instance for this run (or uses the one already initialised in the process).
        actors: model-holding actors; None: as many as the cluster has CPUs / cpus_per_actor.
        cpus_per_actor: CPUs Ray reserves per actor (its inference threads and its reader).
    """

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1.0

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise ConfigError(f"ray actors must be at least 1, got {self.actors}")
        if self.cpus_per_actor <= 0:
            raise ConfigError(f"cpus_per_actor must be positive, got {self.cpus_per_actor}")


# Measured on the 2-core machine (docs/large-images.md, "Defaults"): two reader processes
# keep one JPEG decoding while the other's tiles are inferred; batch 1 with the engine's
# optimal number of requests matched batch 4-8 in throughput at lower memory. (S3's "4N
# batch", 4 tiles of a 2x2 fit grid per call, is `batch=4`; benchmarks/counting.py.)
DEFAULT_READERS = 2
DEFAULT_BATCH = 1


@dataclass(frozen=True)
class PipelineOptions(Config):
    """Everything `run_pipeline` needs besides the predictor and the inputs.

    Attributes:
        tiling: how images are cut into model inputs.
        merge: how detections of neighbouring tiles are merged.
        reader: force a reader library; None: chosen per file by format.
        reader_options: reduced decode, memory bounds, fill value.
        readers: reader processes (local engine) decoding images in parallel with inference.
        batch: tiles per inference call; batches span image boundaries.
        requests: inference calls in flight; None: the predictor's `max_in_flight`.
        slots: shared-memory tile slots (each one model input, H x W x 3 bytes); None:
            enough for two batches plus two tiles per reader. Bounds how far reading runs
            ahead of inference.
        preview: also write `<stem>.png`, the image downscaled with its boxes drawn (a
            counting model: under its density as a heat map, with the count).
        preview_size: longest side of the preview, pixels.
        density: counting models: also write `<stem>.npy`, the stitched density map.
        engine: local or Ray.
        ray: Ray engine options.
        start_method: how reader processes start (never fork).
    """

    tiling: TilingOptions = field(default_factory=TilingOptions)
    merge: MergeOptions = field(default_factory=MergeOptions)
    reader: ReaderKind | None = None
    reader_options: ReaderOptions = field(default_factory=ReaderOptions)
    readers: int = DEFAULT_READERS
    batch: int = DEFAULT_BATCH
    requests: int | None = None
    slots: int | None = None
    preview: bool = False
    preview_size: int = 1024
    density: bool = False
    engine: EngineKind = EngineKind.LOCAL
    ray: RayOptions = field(default_factory=RayOptions)
    start_method: StartMethod = StartMethod.FORKSERVER

    def __post_init__(self) -> None:
        for name in ("readers", "batch", "preview_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("requests", "slots"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.slots is not None and self.slots < self.batch:
            raise ConfigError(f"slots ({self.slots}) must hold at least one batch ({self.batch})")

    @property
    def slot_count(self) -> int:
        return self.slots or 2 * self.batch + 2 * self.readers

    def preview_shape(self, image_wh: tuple[int, int]) -> tuple[int, int]:
        """(w, h) of the preview of an image of `image_wh`: longest side `preview_size`."""
        scale = min(1.0, self.preview_size / max(image_wh))
        return max(1, math.floor(image_wh[0] * scale)), max(1, math.floor(image_wh[1] * scale))
