"""Stain normalisation: recolour a patch to another image's stain style (S0's StainNorm).

Two methods:
- Reinhard et al. 2001 colour transfer: match the patch's per-channel mean and standard
  deviation to the reference's, in CIELAB (OpenCV's float conversion: L in [0, 100]).
  Reinhard used the lαβ space; CIELAB is the common substitute (HistomicsTK, StainTools)
  and keeps this a few cv2 calls.
- Macenko et al. 2009 ("A method for normalizing histology slides for quantitative
  analysis", ISBI): optical density, the plane of the two largest singular vectors of
  the OD tuples, robust extreme angles (alpha-th percentiles) as the two stain vectors,
  concentrations by least squares scaled by their 99th percentiles, then re-synthesis
  with the reference's stain vectors and white level.

Written by hand (numpy + cv2), after looking for a library (2026): torchstain 1.4.1
(last release 2025-01) now needs only numpy, but its Macenko crashes on patches with
little stained area (EIDOSLAB/torchstain issues #1, #54; the maintainers' advice is to
filter such images out) and assumes a fixed white level of 240, while a pasted cell patch
is small and mostly background; StainTools 2.1.2 (2019) is unmaintained and needs SPAMS;
HistomicsTK and TIAToolbox bring large dependency trees (large_image, torch). Both methods
are short here, and both degrade gracefully: a patch or reference without enough stain is
returned unchanged.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from leanvision.data.augment.common import subsample

# Reinhard: channels flatter than this (LAB units) are set to the reference mean, not
# stretched (a flat patch has no texture to scale; dividing by ~0 would amplify noise).
_FLAT_STD = 1e-3
# Macenko: stain vectors closer than this are one stain; unmixing them is ill-posed.
_MIN_STAIN_ANGLE_DEG = 5.0
# Pixels sampled (strided) to measure a whole image's stain style or white level: the
# 1st/99th percentiles of 2^18 samples are within a fraction of a grey level of the full
# image's, at a fraction of the cost on 10000 px slides.
STATS_PIXELS = 1 << 18


class StainNorm(enum.StrEnum):
    REINHARD = "reinhard"
    MACENKO = "macenko"


# --- Reinhard ------------------------------------------------------------------------


def to_lab(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxWx3 float32 CIELAB (L in [0, 100], a and b about [-127, 127])."""
    import cv2

    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def from_lab(lab: np.ndarray) -> np.ndarray:
    """CIELAB float -> uint8 RGB, colours outside the RGB gamut clipped."""
    import cv2

    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def lab_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std), each (3,) float64, of the image in CIELAB.

    Large images are subsampled to about `STATS_PIXELS` pixels.
    """
    lab = to_lab(np.ascontiguousarray(subsample(image, STATS_PIXELS))).reshape(-1, 3).astype(np.float64)
    return lab.mean(axis=0), lab.std(axis=0)


def reinhard(image: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Give `image` the CIELAB per-channel `mean` and `std` (3,) of a reference."""
    lab = to_lab(image).astype(np.float64)
    own_mean = lab.reshape(-1, 3).mean(axis=0)
    own_std = lab.reshape(-1, 3).std(axis=0)
    ratio = np.where(own_std > _FLAT_STD, np.asarray(std) / np.maximum(own_std, _FLAT_STD), 0.0)
    return from_lab((lab - own_mean) * ratio + np.asarray(mean))


# --- Macenko -------------------------------------------------------------------------


@dataclass(frozen=True)
class StainReference:
    """The stain style of an image, as Macenko's method measures it.

    Attributes:
        stains: (3, 2) unit optical-density vectors (rows R, G, B), one column per stain,
            the stain absorbing more red first (haematoxylin in H&E, likewise in Pap).
        max_concentration: (2,) 99th percentile of each stain's concentration.
        white: (3,) transmitted-light level per channel (the brightest background).
    """

    stains: np.ndarray
    max_concentration: np.ndarray
    white: np.ndarray


def estimate_white(image: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """(3,) float64 light level per channel: the `percentile` of each channel's values.

    Macenko assumes a known white level I0 (often fixed at 240 or 255); slides and
    scanners differ, so it is measured on the image, whose background is unstained.
    """
    pixels = subsample(image, STATS_PIXELS).reshape(-1, 3)
    return np.percentile(pixels, percentile, axis=0).astype(np.float64)


def optical_density(pixels: np.ndarray, white: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB -> (N, 3) float64 optical density -log(I / I0), clipped at 0."""
    # A 256-entry table per channel: ~10x faster than np.log over every pixel.
    levels = np.arange(256, dtype=np.float64)
    table = np.maximum(-np.log((levels[None, :] + 1.0) / (np.asarray(white)[:, None] + 1.0)), 0.0)
    return np.stack([table[c][pixels[:, c]] for c in range(3)], axis=1)


def _stain_vectors(tissue_od: np.ndarray, alpha: float) -> np.ndarray:
    """(3, 2) stain vectors of (N, 3) stained-pixel OD tuples (Macenko 2009, steps 3-7)."""
    # The eigenvectors of the 3x3 Gram matrix are the right singular vectors of the OD
    # matrix: Macenko's (uncentred) SVD without an N x 3 decomposition.
    _, vecs = np.linalg.eigh(tissue_od.T @ tissue_od)
    plane = vecs[:, [2, 1]]
    plane = plane * np.where(plane.sum(axis=0) < 0, -1.0, 1.0)  # point into positive OD
    projected = tissue_od @ plane
    phi = np.arctan2(projected[:, 1], projected[:, 0])
    low, high = np.percentile(phi, [alpha, 100.0 - alpha])
    vectors = plane @ np.array([[np.cos(low), np.cos(high)], [np.sin(low), np.sin(high)]])
    vectors /= np.linalg.norm(vectors, axis=0, keepdims=True)
    return vectors if vectors[0, 0] >= vectors[0, 1] else vectors[:, ::-1]


def _distinct(stains: np.ndarray) -> bool:
    cosine = float(np.clip(stains[:, 0] @ stains[:, 1], -1.0, 1.0))
    return np.degrees(np.arccos(cosine)) >= _MIN_STAIN_ANGLE_DEG


def _analyse(
    image: np.ndarray, white: np.ndarray, *, alpha: float, beta: float, min_pixels: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """(stains (3, 2), max concentrations (2,)) of an image, or None if it has too little
    stain: fewer than `min_pixels` pixels with OD above `beta` in every channel (Macenko's
    transparency threshold), stains not distinct, or no positive concentration."""
    od = optical_density(image.reshape(-1, 3), white)
    tissue = od[(od > beta).all(axis=1)]
    if len(tissue) < min_pixels:
        return None
    stains = _stain_vectors(tissue, alpha)
    if not _distinct(stains):
        return None
    concentration = np.linalg.pinv(stains) @ tissue.T
    max_concentration = np.percentile(concentration, 99, axis=1)
    if (max_concentration <= 1e-6).any():
        return None
    return stains, max_concentration


def fit_macenko(
    image: np.ndarray, *, alpha: float = 1.0, beta: float = 0.15, min_pixels: int = 50
) -> StainReference | None:
    """The stain style of `image` (subsampled to about `STATS_PIXELS` pixels), or None if
    it holds too little stain to measure."""
    small = np.ascontiguousarray(subsample(image, STATS_PIXELS))
    white = estimate_white(small)
    found = _analyse(small, white, alpha=alpha, beta=beta, min_pixels=min_pixels)
    return None if found is None else StainReference(found[0], found[1], white)


def macenko(
    image: np.ndarray,
    reference: StainReference,
    *,
    white: np.ndarray | None = None,
    alpha: float = 1.0,
    beta: float = 0.15,
    min_pixels: int = 50,
) -> np.ndarray:
    """Re-stain `image` (HxWx3 uint8 RGB) with `reference`'s stains and white level.

    Args:
        white: (3,) light level of the image's source (e.g. the whole slide a patch was cut
            from); measured on `image` itself if None.

    Returns:
        The re-stained image, or `image` itself if it holds too little stain to unmix.
    """
    white = estimate_white(image) if white is None else np.asarray(white, np.float64)
    found = _analyse(image, white, alpha=alpha, beta=beta, min_pixels=min_pixels)
    if found is None:
        return image
    stains, max_concentration = found
    od = optical_density(image.reshape(-1, 3), white)
    concentration = np.linalg.pinv(stains) @ od.T
    concentration *= (reference.max_concentration / max_concentration)[:, None]
    rgb = (reference.white + 1.0) * np.exp(-(reference.stains @ concentration)).T - 1.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(image.shape)


# --- choosing a method ---------------------------------------------------------------


def stain_normalizer(
    kind: StainNorm | None, reference: np.ndarray, *, source_white: np.ndarray | None = None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function recolouring patches to `reference`'s stain style, or None to leave them.

    None also when Macenko finds too little stain in `reference` to measure its style.

    Args:
        kind: the method, or None for no normalisation.
        reference: HxWx3 uint8 RGB image whose style patches take (e.g. a negative image).
        source_white: (3,) light level of the image the patches come from (Macenko).
    """
    if kind is None:
        return None
    if StainNorm(kind) is StainNorm.REINHARD:
        mean, std = lab_stats(reference)
        return functools.partial(reinhard, mean=mean, std=std)
    style = fit_macenko(reference)
    if style is None:
        return None
    return functools.partial(macenko, reference=style, white=source_white)
