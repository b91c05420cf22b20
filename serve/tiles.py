"""Seam-free tiled inference and shared normalisation statistics (onnxruntime + numpy + Pillow, no torch).

The rules (which generators tile, companion files, window geometry) are in :mod:`cyclegan.contract.tiles`.
Here they run:

* :class:`Tiler` cuts a picture into overlapping windows (padded through index maps: the padded picture is
  never built), runs each (the tiles companion with the picture's statistics for InstanceNorm models, the
  plain model for BatchNorm/norm-free ones), and blends the windows with linear ramps into a float strip per
  row of windows, whose rows go into the uint8 output as soon as no later window reaches them (only the
  overlap with the next row of windows is kept); memory is bounded by the tile size plus one strip, not by
  the network's activations on the whole picture.
* :func:`picture_stats` runs the stats companion on a copy of the picture downscaled to ``stats_side``.
* :class:`StatsSmoother` shares statistics across the frames of a video shot: a running average, reset when a
  cheap histogram test (:class:`serve.temporal.CutDetector`) sees a scene cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cyclegan.contract import pixels, sizes
from cyclegan.contract.card import GeneratorCard
from cyclegan.contract.runtime import INPUT_NAME, OUTPUT_NAME, release_freed_memory
from cyclegan.contract.tiles import (
    DEFAULT_STATS_SIDE,
    STATS_NAME,
    TileGeometry,
    grid,
    needs_stats,
    tileable,
    weights,
)
from serve.temporal import CUT_THRESHOLD, CutDetector

__all__ = ["Companions", "StatsSmoother", "Tiler", "load_companions", "picture_stats"]

_FINISH_ROWS = 64  # the accumulator is turned into uint8 this many rows at a time (bounded temporaries)


@dataclass
class Companions:
    """The loaded stats and tiles sessions of one model (None where the model has none)."""

    stats: Any = None
    tiles: Any = None
    stats_size: int = 0
    missing: str = ""  # why there are none, for the fallback message


def load_companions(model: Path, card: GeneratorCard, make_session: Any) -> Companions:
    """The companion sessions listed in ``card``, from the model's folder; a missing file is a reason, not an
    error (the plain model still serves, large pictures are downscaled instead)."""
    if not tileable(card.generator):
        return Companions(
            missing=f"{card.generator} cannot be tiled seam-free (its receptive field is the whole image)"
        )
    if not needs_stats(card.norm):
        return Companions()
    if card.stats_model is None or card.tiles_model is None:
        return Companions(
            missing=f"{model.name} was exported without the seam-free tiles companions (re-export it with "
            "`cyclegan export`)"
        )
    paths = [model.with_name(card.stats_model), model.with_name(card.tiles_model)]
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        return Companions(missing=f"{', '.join(absent)} (listed by {model.name}) not found next to it")
    # Without onnxruntime's memory arena: each pass gives its activations back after each run instead of
    # holding its peak for good. Measured with ResNet-9 at 2048 px: an arena (even one shared by both sessions,
    # grown only as requested) saves ~17% of the time but raises the peak from 1.27 GB to 2.1 GB (1.7 GB when
    # shrunk after the statistics pass), which would break the 1.5 GB bound at 24 MP.
    stats, tiles = make_session(paths[0], arena=False), make_session(paths[1], arena=False)
    release_freed_memory()  # what loading them needed and freed (about 80 MB each for ResNet-9)
    return Companions(stats=stats, tiles=tiles, stats_size=int(card.stats_size or 0))


def _model_input(image: np.ndarray, card: GeneratorCard) -> tuple[np.ndarray, tuple[int, int]]:
    """uint8 [H, W, C] -> padded float32 [1, C, H', W'] and the (top, left) offset."""
    x = pixels.to_model(image[None] if image.ndim == 3 else image[None, :, :, None], card.mean, card.std)
    return sizes.pad_centred(x, card.size_multiple, card.min_side)


def picture_stats(
    image: np.ndarray, card: GeneratorCard, stats_session: Any, stats_side: int = DEFAULT_STATS_SIDE
) -> np.ndarray:
    """The InstanceNorm statistics [1, stats_size] of the whole picture (uint8 [H, W, C]), downscaled first."""
    h, w = image.shape[:2]
    size = sizes.fit_size(w, h, stats_side)
    if size != (w, h):
        small = Image.fromarray(image if image.shape[2] > 1 else image[:, :, 0]).resize(size, Image.Resampling.BOX)
        image = np.asarray(small)
        if image.ndim == 2:
            image = image[:, :, None]
    x, _ = _model_input(image, card)
    return stats_session.run([STATS_NAME], {INPUT_NAME: x})[0]


@dataclass
class Tiler:
    """Runs one picture window by window. ``session``: the tiles companion (with ``stats``) or the plain model."""

    card: GeneratorCard
    session: Any
    geometry: TileGeometry
    with_stats: bool
    dtype: type = np.float32
    windows_run: int = field(default=0, init=False)

    def run(self, image: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
        """Stylize uint8 [H, W, C] -> uint8 [H, W, C_out] (the picture's ``stats`` required with_stats)."""
        if self.with_stats and stats is None:
            raise ValueError("this tiler needs the picture's statistics")
        card = self.card
        h, w = image.shape[:2]
        channels = image.shape[2] if image.ndim == 3 else 1
        hwc = image.reshape(h, w, channels)
        # The padded picture is never built: each window takes its rows and columns through these indices.
        row_index, top = sizes.padded_index(h, card.size_multiple, card.min_side)
        col_index, left = sizes.padded_index(w, card.size_multiple, card.min_side)
        big_h, big_w = len(row_index), len(col_index)
        rows, cols = grid(big_h, big_w, self.geometry)
        row_w, col_w = weights(rows, big_h, self.geometry), weights(cols, big_w, self.geometry)
        out = np.empty((h, w, card.output_nc), dtype=np.uint8)
        # One float strip per row of windows (picture rows it covers, full width); rows that no later row of
        # windows reaches are finished into `out` at once, so at most a few strips are held at a time.
        pending: list[tuple[int, np.ndarray]] = []  # (first picture row, strip [C, rows, w])
        done = 0  # picture rows finished
        for index, ((y0, y1), wy) in enumerate(zip(rows, row_w)):
            iy0, iy1 = max(y0, top), min(y1, top + h)  # the part of this row of windows inside the picture
            if iy0 < iy1:
                strip = np.zeros((card.output_nc, iy1 - iy0, w), dtype=np.float32)
                for (x0, x1), wx in zip(cols, col_w):
                    ix0, ix1 = max(x0, left), min(x1, left + w)
                    if ix0 >= ix1:
                        continue
                    tile = hwc[np.ix_(row_index[y0:y1], col_index[x0:x1])]  # [th, tw, C], padded where needed
                    x = pixels.to_model(tile[None], card.mean, card.std)
                    feeds = {INPUT_NAME: x.astype(self.dtype, copy=False)}
                    if self.with_stats:
                        feeds[STATS_NAME] = np.asarray(stats, dtype=np.float32)
                    y = self.session.run([OUTPUT_NAME], feeds)[0][0]
                    self.windows_run += 1
                    part = y[:, iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0].astype(np.float32, copy=False)
                    part *= wy[iy0 - y0 : iy1 - y0, None]
                    part *= wx[None, ix0 - x0 : ix1 - x0]
                    strip[:, :, ix0 - left : ix1 - left] += part
                pending.append((iy0 - top, strip))
            later = rows[index + 1][0] - top if index + 1 < len(rows) else h
            done = self._finish(pending, done, min(max(later, done), h), out)
        return out

    def _finish(self, pending: list[tuple[int, np.ndarray]], start: int, stop: int, out: np.ndarray) -> int:
        """Sum the strips over picture rows [start, stop) into ``out`` (uint8); drop strips wholly used."""
        for r in range(start, stop, _FINISH_ROWS):
            r1 = min(r + _FINISH_ROWS, stop)
            rows = np.zeros((self.card.output_nc, r1 - r, out.shape[1]), dtype=np.float32)
            for first, strip in pending:
                a, b = max(r, first), min(r1, first + strip.shape[1])
                if a < b:
                    rows[:, a - r : b - r] += strip[:, a - first : b - first]
            out[r:r1] = pixels.from_model(rows[None], self.card.mean, self.card.std)[0]
        # Keep only the rows still to be summed (a copy, so the rest of the strip is freed now).
        pending[:] = [
            (max(first, stop), strip[:, max(0, stop - first) :].copy())
            for first, strip in pending
            if first + strip.shape[1] > stop
        ]
        return stop


class StatsSmoother:
    """Statistics shared across the frames of a shot: an exponential running average of each frame's
    statistics (``decay`` of the history per frame), restarted at scene cuts
    (:class:`serve.temporal.CutDetector` with ``cut_threshold``).

    Video stable mode does not use it (it removed only 3-20% of the flicker for about 40% more time, see
    ``benchmarks/large.py``, which keeps it as a comparison); it stays for callers that want one look per shot.
    """

    def __init__(self, decay: float = 0.9, cut_threshold: float = CUT_THRESHOLD, every: int = 1) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.decay = decay
        self.every = every  # a frame's own statistics are computed for every `every`-th frame of a shot
        self.mean: np.ndarray | None = None
        self._cut = CutDetector(cut_threshold)
        self._since = 0
        self.computed = 0  # frames whose own statistics were computed

    @property
    def cuts(self) -> int:
        """Scene cuts seen (the first frame is not one)."""
        return self._cut.cuts

    def is_cut(self, frame: np.ndarray) -> bool:
        """Does ``frame`` start a new shot (compared with the previous frame)? Remembers ``frame``."""
        return self._cut(frame)

    def update(self, frame: np.ndarray, stats: np.ndarray) -> np.ndarray:
        """The statistics to stylize ``frame`` with, given its own ``stats``."""
        if self.is_cut(frame):
            self.mean = None
        if self.mean is None:
            self.mean = np.array(stats, dtype=np.float64)
        else:
            self.mean = self.decay * self.mean + (1.0 - self.decay) * stats
        return self.mean.astype(np.float32)

    def stats_for(self, frame: np.ndarray, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Like :meth:`update`, computing ``compute(frame)`` only at the start of a shot and every ``every``
        frames (statistics drift slowly within a shot; a cut is caught on every frame)."""
        if self.is_cut(frame):
            self.mean = None
        if self.mean is None or self._since + 1 >= self.every:
            stats = compute(frame)
            self.computed += 1
            self._since = 0
            if self.mean is None:
                self.mean = np.array(stats, dtype=np.float64)
            else:
                self.mean = self.decay * self.mean + (1.0 - self.decay) * stats
        else:
            self._since += 1
        return self.mean.astype(np.float32)

    def reset(self) -> None:
        self.mean = None
        self._cut.reset()
