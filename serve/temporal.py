"""Temporal stabilisation of stylized video: scene cuts and change-masked holding (numpy + Pillow, no torch).

Frame-by-frame stylization flickers where the picture did not change: the generator answers a moving object
over its receptive field (the background around it shifts a little every frame) and answers sensor noise with
larger, textured changes. :class:`TemporalStabiliser` keeps what did not change:

* change mask: the mean |I(t) - I(t-1)| over the channels and over :data:`BLOCK` x :data:`BLOCK` blocks of the
  input; a block changed when that exceeds :data:`NOISE_FACTOR` times the frame's noise level (a low percentile
  of the block values, :data:`NOISE_PERCENTILE`: most blocks of a static-camera frame hold only noise, and a low
  percentile stays a noise estimate while a camera pan changes most blocks) and at least :data:`MIN_CHANGE`;
  softened over about a block (bilinear upsampling of the block mask);
* hold: where the input did not change, the previous output is kept as long as it stays within
  :data:`TOLERANCE` levels of the new stylized frame, and dragged along at that distance when the new frame
  moves further: ``out = S - (1 - mask) * clip(S - out_prev, -TOLERANCE, TOLERANCE)``. Changes of the stylized
  frame that come and go within the tolerance (the answer to noise, to an object passing nearby) vanish; the
  output never departs more than the tolerance from frame-by-frame (PSNR >= 20 log10(255 / TOLERANCE) =
  30.1 dB on every frame), so it follows slow drifts and never freezes. Where the input changed (mask 1) the new
  stylized frame shows as it is;
* a scene cut (:class:`CutDetector`) or a change of frame size starts again from the new frame.

Memory: the previous input (uint8) and the previous output (float32, so holding does not drift by rounding).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["CutDetector", "TemporalStabiliser", "histogram"]

CUT_THRESHOLD = 0.5  # histogram L1 distance (0 = identical, 2 = disjoint) above which a frame starts a new shot
BLOCK = 4  # px: change is judged per block; averaging 4x4 pixels x 3 channels shrinks sensor noise ~7x
NOISE_PERCENTILE = 20  # of the block changes: the frame's noise level (most blocks of a static shot are still)
NOISE_FACTOR = 3.0  # a block changed when its mean change is this many times the noise level...
MIN_CHANGE = 1.5  # ...and at least this many levels (mean over block and channels; codecs dither about 1)
# Levels the held output may differ from the new stylized frame: hides what comes and goes within it, and bounds
# the departure from frame-by-frame (8 levels: PSNR >= 30.1 dB per frame, the floor).
TOLERANCE = 8.0


def histogram(frame: np.ndarray) -> np.ndarray:
    """16-bin colour histogram per channel of a ~64-px-wide thumbnail, normalised to sum 1 per channel."""
    w = frame.shape[1]
    step = max(1, w // 64)
    thumb = frame[::step, ::step].reshape(-1, frame.shape[2] if frame.ndim == 3 else 1)
    hist = np.stack([np.bincount(thumb[:, c] >> 4, minlength=16) for c in range(thumb.shape[1])])
    return hist / max(1, thumb.shape[0])


class CutDetector:
    """Scene cuts: the L1 distance between the colour histograms (:func:`histogram`) of consecutive frames,
    averaged over channels, above ``threshold``. Remembers one histogram."""

    def __init__(self, threshold: float = CUT_THRESHOLD) -> None:
        self.threshold = threshold
        self.cuts = 0  # cuts seen (the first frame is not one)
        self._histogram: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> bool:
        """Does ``frame`` start a new shot (compared with the previous frame)? Remembers ``frame``."""
        hist = histogram(frame)
        previous, self._histogram = self._histogram, hist
        if previous is None or previous.shape != hist.shape:
            return False
        cut = float(np.abs(hist - previous).sum(axis=1).mean()) > self.threshold
        self.cuts += cut
        return cut

    def reset(self) -> None:
        self._histogram = None


def block_change(frame: np.ndarray, previous: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Mean |frame - previous| over the channels and over ``block`` x ``block`` blocks: float32 [Hb, Wb]."""
    h, w = frame.shape[:2]
    channels = frame.shape[2] if frame.ndim == 3 else 1
    diff = np.abs(frame.astype(np.int16) - previous.astype(np.int16)).reshape(h, w, channels)
    diff = diff.sum(axis=2, dtype=np.int32)
    hb, wb = -(-h // block), -(-w // block)
    if (hb * block, wb * block) != (h, w):
        diff = np.pad(diff, ((0, hb * block - h), (0, wb * block - w)), mode="edge")
    sums = diff.reshape(hb, block, wb, block).sum(axis=(1, 3), dtype=np.int64)
    return (sums / (block * block * channels)).astype(np.float32)


class TemporalStabiliser:
    """Change-masked holding of stylized frames (see the module docs); call it on each frame of a video in order."""

    def __init__(
        self,
        *,
        tolerance: float = TOLERANCE,
        block: int = BLOCK,
        noise_factor: float = NOISE_FACTOR,
        min_change: float = MIN_CHANGE,
        cut_threshold: float = CUT_THRESHOLD,
    ) -> None:
        if tolerance < 0 or block < 1:
            raise ValueError(f"tolerance must be >= 0 and block >= 1, got {tolerance} and {block}")
        self.tolerance, self.block = float(tolerance), block
        self.noise_factor, self.min_change = noise_factor, min_change
        self.cut = CutDetector(cut_threshold)
        self._input: np.ndarray | None = None
        self._output: np.ndarray | None = None
        self.changed = 1.0  # share of the last frame taken as stylized (the mask's mean)

    @property
    def cuts(self) -> int:
        return self.cut.cuts

    def reset(self) -> None:
        self._input = self._output = None
        self.cut.reset()

    def change_mask(self, frame: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """Where ``frame`` changed from ``previous``: float32 [H, W] in [0, 1] (1 = take the new stylized frame)."""
        change = block_change(frame, previous, self.block)
        noise = float(np.percentile(change, NOISE_PERCENTILE))
        cells = (change > max(self.min_change, self.noise_factor * noise)).astype(np.float32)
        h, w = frame.shape[:2]
        # Bilinear from the block grid (cell centres) to pixels: a soft edge about one block wide.
        full = Image.fromarray(cells, mode="F").resize(
            (cells.shape[1] * self.block, cells.shape[0] * self.block), Image.Resampling.BILINEAR
        )
        return np.asarray(full, dtype=np.float32)[:h, :w]

    def __call__(self, frame: np.ndarray, styled: np.ndarray, cut: bool | None = None) -> np.ndarray:
        """The stabilised output (uint8, ``styled``'s shape) for the input ``frame`` (uint8 [H, W, C]) and its
        frame-by-frame stylization ``styled``. ``cut``: whether ``frame`` starts a shot (None: detected here)."""
        if cut is None:
            cut = self.cut(frame)
        new = styled.astype(np.float32)
        previous_input, previous_output = self._input, self._output
        if (
            cut
            or previous_input is None
            or previous_output is None
            or previous_input.shape != frame.shape
            or previous_output.shape != new.shape
        ):
            self._output, self.changed = new, 1.0
        else:
            mask = self.change_mask(frame, previous_input)
            self.changed = float(mask.mean())
            # out = new - (1 - mask) * clip(new - previous, -tolerance, tolerance), in place on `previous_output`
            np.subtract(new, previous_output, out=previous_output)
            np.clip(previous_output, -self.tolerance, self.tolerance, out=previous_output)
            previous_output *= (1.0 - mask)[:, :, None]
            np.subtract(new, previous_output, out=previous_output)
            self._output = previous_output
        self._input = frame.copy()
        return np.clip(np.rint(self._output), 0, 255).astype(np.uint8)
