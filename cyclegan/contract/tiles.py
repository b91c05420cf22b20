"""Tiled inference, the shared rules: which generators tile seam-free, the companion files, the tile geometry.

Why tiles need more than overlap: InstanceNorm normalises each input with its own per-channel mean and variance,
so tiles stylized on their own each get another look (seams). Export therefore writes, next to an
instance-norm ResNet model ``NAME.onnx``, two companion graphs (listed in the card, fields ``stats_model`` and
``tiles_model``):

* ``NAME.stats.onnx``: ``input`` -> ``stats`` [N, stats_size]: every InstanceNorm layer's per-channel mean, then
  variance (biased, as InstanceNorm uses), layer after layer, for the image it is given (serving gives it the
  whole picture, downscaled to at most :data:`DEFAULT_STATS_SIDE`);
* ``NAME.tiles.onnx``: ``input``, ``stats`` -> ``output``: the generator with those statistics as inputs instead of
  computing its own, so every tile is normalised like the whole picture.

BatchNorm and norm-free ResNets tile with the plain model. U-Nets do not tile seam-free: their receptive field
is the whole image (eight stride-2 levels down to 1x1), so serving falls back to the whole image, downscaled to
the tile budget when larger.

Geometry: the picture is padded once (centred, :func:`cyclegan.contract.sizes.pad_centred`), then cut into
windows of ``tile`` pixels (a multiple of the generator's size multiple, starting at multiples of it, so the
stride-2 layers sample the same pixels as on the whole picture). Neighbouring windows overlap by at least
``2 * margin + ramp``: the ``margin`` pixels next to a window's inner edge (where the network reflect-pads
at the cut instead of seeing the neighbours) are dropped, and the next ``ramp`` pixels blend linearly into the
neighbour. Weights are separable and normalised per axis, so they sum to one everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.sizes import round_up

STATS_SUFFIX = ".stats.onnx"
TILES_SUFFIX = ".tiles.onnx"
COMPANION_SUFFIXES = (STATS_SUFFIX, TILES_SUFFIX)
STATS_NAME = "stats"  # the statistics tensor: the stats form's output, the tiles form's second input

DEFAULT_TILE = 1024  # tile side (pixels, halo included); images above DEFAULT_TILE**2 pixels are tiled
# Window pixel budget by default: ResNet-9's activations take about 1 KB per window pixel, so windows of at most
# 960x960 pixels keep a 24 MP photo under 1.5 GB (6000x4000 in 5x6 windows of 840x1040 px).
DEFAULT_WINDOW_PIXELS = 960 * 960
# The whole picture is downscaled to this longest side for its statistics. The copy sets how close tiles come to
# the whole image and costs a pass of its own: with a trained demo-recipe model on the 2048 px mosaic
# (benchmarks/large.py) 1024 px gave 40.8 dB against the whole image, 896 px 39.5, 768 px 38.2, 640 px 37.0 and
# 512 px 35.8; 768 px costs 0.14x of a 2048 px picture's pixels instead of 0.25x at 1024.
DEFAULT_STATS_SIDE = 768
# Dropped at each inner window edge, then a linear blend. 16 + 16 (overlap 48) measured like 32 + 32 with the
# trained demo model at 2048 px (PSNR against the whole image 35.14 dB for both: the statistics copy sets it;
# seam score 0.994, the whole image's on the same lines 0.994) for 7% fewer pixels to run.
DEFAULT_MARGIN = 16
DEFAULT_RAMP = 16
MIN_TILE = 64


class TileError(ToolkitError, ValueError):
    """A tile size that cannot work (too small for the overlap), or a model that cannot tile."""


def is_companion(path: str | PurePath) -> bool:
    """Is this file a companion graph (not a model of its own)? Model listings skip these."""
    return PurePath(path).name.lower().endswith(COMPANION_SUFFIXES)


def companion_names(model_name: str) -> tuple[str, str]:
    """(stats, tiles) file names for the model file ``model_name`` (``x_A2B.onnx`` -> ``x_A2B.stats.onnx``, ...)."""
    stem = model_name[: -len(".onnx")] if model_name.lower().endswith(".onnx") else model_name
    return stem + STATS_SUFFIX, stem + TILES_SUFFIX


def tileable(generator: str) -> bool:
    """Can this generator kind be cut into tiles without seams? (U-Nets: no, their receptive field is the image.)"""
    return generator.startswith("resnet_")


def needs_stats(norm: str) -> bool:
    """Do tiles of this norm need the picture's statistics (InstanceNorm) or none (BatchNorm, no norm)?"""
    return norm == "instance"


@dataclass(frozen=True)
class TileGeometry:
    tile: int = DEFAULT_TILE
    margin: int = DEFAULT_MARGIN
    ramp: int = DEFAULT_RAMP
    multiple: int = 4
    pixels: int = 0  # window pixel budget; 0: tile * tile

    @property
    def budget(self) -> int:
        """The most pixels one window may hold."""
        return self.pixels or self.tile * self.tile

    @property
    def overlap(self) -> int:
        """Least overlap of neighbouring windows, a multiple of the size multiple."""
        return round_up(2 * self.margin + self.ramp, self.multiple)

    def check(self) -> TileGeometry:
        if self.tile % self.multiple:
            raise TileError(f"tile side {self.tile} must be a multiple of {self.multiple}")
        if self.tile < max(MIN_TILE, 2 * self.overlap):
            raise TileError(
                f"tile side {self.tile} is too small: at least {max(MIN_TILE, 2 * self.overlap)} "
                f"(twice the overlap of {self.overlap} px)"
            )
        return self


def geometry(
    tile: int | None, multiple: int, *, margin: int = DEFAULT_MARGIN, ramp: int = DEFAULT_RAMP
) -> TileGeometry:
    """The geometry for a requested tile side (rounded down to the generator's size multiple; windows of at
    most its square's pixels), or None: the default, :data:`DEFAULT_TILE` with :data:`DEFAULT_WINDOW_PIXELS`."""
    pixels = DEFAULT_WINDOW_PIXELS if tile is None else 0
    tile = DEFAULT_TILE if tile is None else max(multiple, tile - tile % multiple)
    return TileGeometry(tile=tile, margin=margin, ramp=ramp, multiple=multiple, pixels=pixels).check()


def _side(length: int, count: int, geo: TileGeometry) -> int:
    """The least window side (aligned) with which ``count`` windows cover ``length`` with the overlap."""
    if count == 1:
        return length
    return round_up(-(-(length + (count - 1) * geo.overlap) // count), geo.multiple)


def windows(
    length: int, geo: TileGeometry, count: int | None = None, *, side: int | None = None
) -> list[tuple[int, int]]:
    """[start, end) windows covering ``length`` (a multiple of ``geo.multiple``), evenly spread, aligned.

    ``count`` windows (default: as few as a side of ``side``, default ``geo.tile``, allows), each shrunk to the
    least size that still gives every neighbour the overlap (less wasted work than full-size windows overlapping
    more than needed).
    """
    if count is None:
        side = side or geo.tile
        count = 1 if length <= side else -(-(length - geo.overlap) // (side - geo.overlap))
    if count == 1:
        return [(0, length)]
    m, tile = geo.multiple, _side(length, count, geo)
    span = length - tile
    starts = [m * ((k * span) // ((count - 1) * m)) for k in range(count)]
    starts[-1] = span
    return [(s, s + tile) for s in starts]


def grid(height: int, width: int, geo: TileGeometry) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(row windows, column windows) covering a padded picture: the window counts per axis with the least total
    window area (the work) among those whose windows stay within ``geo.budget`` pixels (the memory). Windows need
    not be square: 2048x2048 takes 2x3 windows of 1048x716 px (1.07x the picture's pixels) instead of 3x3 of
    716 px (1.10x)."""
    # Windows of at most geo.budget ** 0.5 px a side fit; more windows than that would only add overlap.
    square = max(geo.multiple, min(geo.tile, math.isqrt(geo.budget)) // geo.multiple * geo.multiple)
    most = (len(windows(height, geo, side=square)), len(windows(width, geo, side=square)))
    best = (most[0] * _side(height, most[0], geo) * most[1] * _side(width, most[1], geo), *most)
    for rows in range(1, most[0] + 1):
        side = _side(height, rows, geo)
        cols = next((c for c in range(1, most[1] + 1) if side * _side(width, c, geo) <= geo.budget), None)
        if cols is not None:
            best = min(best, (rows * side * cols * _side(width, cols, geo), rows, cols))
    _, rows, cols = best
    return windows(height, geo, rows), windows(width, geo, cols)


def weights(spans: list[tuple[int, int]], length: int, geo: TileGeometry) -> list[np.ndarray]:
    """1-D float32 blend weights for each window, normalised so that they sum to one at every position."""
    raw = []
    for start, end in spans:
        d = np.arange(end - start, dtype=np.float32) + 0.5
        w = np.ones(end - start, dtype=np.float32)
        if start > 0:
            w *= np.clip((d - geo.margin) / geo.ramp, 0.0, 1.0)
        if end < length:
            w *= np.clip(((end - start) - d - geo.margin) / geo.ramp, 0.0, 1.0)
        raw.append(w)
    total = np.zeros(length, dtype=np.float32)
    for (start, end), w in zip(spans, raw):
        total[start:end] += w
    if np.any(total <= 0):
        raise TileError(f"tile windows leave pixels uncovered (length {length}, {geo}): a bug")
    return [w / total[start:end] for (start, end), w in zip(spans, raw)]
