"""Per-image scores on uint8 HxWx3 arrays (torch-free, numpy; SSIM from scikit-image).

* :func:`mae` -- mean absolute difference in 0-255 units.
* :func:`psnr` -- peak signal-to-noise ratio in dB (peak 255), capped at :data:`PSNR_CAP` for identical images.
* :func:`ssim` -- structural similarity (scikit-image, colour channels averaged).
* :func:`checkerboard_score` -- how much more the output's luminance spectrum spikes at the stride-2 period (where
  a stride-2 transposed convolution leaves its grid) than the input's, against the neighbouring frequencies:
  about 1 = no grid (sharp cartoon outlines included), several times more = a grid was added.
* :func:`flatness` -- the share of pixels in flat areas (cartoons are mostly flat colour, photos are not).
* :func:`colour_shift` -- how far the output's colours moved from the input's at a coarse scale (palette drift),
  blind to the edges and textures a style is meant to change.

The paired scores need a ground truth; the last two read a stylization of any photo: a cartoon style should raise
the flatness towards the cartoon's own while the colour shift stays small.
"""

from __future__ import annotations

import math

import numpy as np

from cyclegan.contract.pixels import LUMA_WEIGHTS

PSNR_CAP = 100.0  # dB; identical images (MSE 0) score this instead of infinity, so that every score is finite
NYQUIST_BAND = 0.02  # cycles/pixel: frequencies with max(|fy|, |fx|) >= 0.5 - NYQUIST_BAND count as stride-2
_LUMA = np.array(LUMA_WEIGHTS)
FLAT_RANGE = 6.0  # grey levels: a pixel is flat when its 3x3 neighbourhood's luminance spans at most this
COLOUR_SIGMA = 4.0  # px: the Gaussian blur under which colour_shift compares (finer detail is the style's business)


def _checked(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for name, x in (("a", a), ("b", b)):
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"{name}: expected a uint8 HxWx3 image, got {x.dtype} {x.shape}")
    if a.shape != b.shape:
        raise ValueError(f"images of different sizes: {a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}")
    return a, b


def _luma(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")
    return image.astype(np.float64) @ _LUMA


def mae(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 HxWx3 images, in 0-255 units."""
    a, b = _checked(a, b)
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (peak 255); identical images score :data:`PSNR_CAP`."""
    a, b = _checked(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (scikit-image's, Gaussian-free 7x7 window, channels averaged); 1.0 = identical.

    Images smaller than 7 pixels on a side use the largest odd window that fits (at least 3)."""
    from skimage.metrics import structural_similarity

    a, b = _checked(a, b)
    side = min(a.shape[:2])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"SSIM needs images of at least 3x3 pixels, got {a.shape[1]}x{a.shape[0]}")
    return float(structural_similarity(a, b, channel_axis=2, data_range=255, win_size=win))


def nyquist_peak(image: np.ndarray, band: float = NYQUIST_BAND) -> float:
    """Mean luminance power at the 2-pixel period over the mean power just below it (Hann-windowed, mean removed).

    The period-2 band is every frequency with ``max(|fy|, |fx|) >= 0.5 - band``; the reference band is
    ``0.5 - 4 band <= max(|fy|, |fx|) < 0.5 - 2 band``. Edges, textures and noise spread their energy smoothly
    over neighbouring frequencies, so photos and clean cartoons (sharp outlines included) stay below about 1;
    a stride-2 grid is a spike at the period-2 band and lifts it several times.
    """
    h, w = image.shape[:2]
    luma = _luma(image)
    luma -= luma.mean()
    # A window keeps the jump between opposite borders (the FFT is periodic) from leaking into every frequency.
    luma *= np.outer(np.hanning(h) if h > 2 else np.ones(h), np.hanning(w) if w > 2 else np.ones(w))
    power = np.abs(np.fft.fft2(luma)) ** 2
    freq = np.maximum(np.abs(np.fft.fftfreq(h))[:, None], np.abs(np.fft.fftfreq(w))[None, :])
    period2 = power[freq >= 0.5 - band]
    below = power[(freq >= 0.5 - 4 * band) & (freq < 0.5 - 2 * band)]
    floor = 1e-3  # per frequency bin: flat images score 1, not 0/0
    return float((period2.mean() + floor) / ((below.mean() if below.size else 0.0) + floor))


def checkerboard_score(output: np.ndarray, input: np.ndarray, band: float = NYQUIST_BAND) -> float:
    """How much more the output's spectrum spikes at the stride-2 period than the input's (same size, uint8 HxWx3).

    The ratio of the two images' :func:`nyquist_peak`. 1.0: no more stride-2 structure than the photo; a
    stylization with sharp flat-colour regions and outlines scores about 1-2 (measured on the quality benchmark's
    ground truth: 1.4-1.7); a checkerboard grid several times more (a +-8 grey-level grid over a photo: > 5);
    smoothing lowers it. Energy alone cannot tell a grid from sharp outlines; the spike against the neighbouring
    frequencies can."""
    output, input = _checked(output, input)
    return nyquist_peak(output, band) / nyquist_peak(input, band)


def flatness(image: np.ndarray, flat_range: float = FLAT_RANGE) -> float:
    """The share of pixels (0-1) whose 3x3 neighbourhood's luminance spans at most ``flat_range`` grey levels.

    Measured on the demo's data: its cartoon frames about 0.5, the shipped photos about 0.15. Noise and grids
    lower it; a stylization towards flat colour areas raises it."""
    luma = np.pad(_luma(image), 1, mode="edge")
    h, w = image.shape[:2]
    windows = [luma[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    spread = np.max(windows, axis=0) - np.min(windows, axis=0)
    return float(np.mean(spread <= flat_range))


def colour_shift(output: np.ndarray, input: np.ndarray, sigma: float = COLOUR_SIGMA) -> float:
    """Mean absolute difference (0-255 units) of the two images after a Gaussian blur of ``sigma`` px per channel.

    The blur removes what a style changes on purpose (edges, outlines, texture, flat shading inside a region) and
    keeps each region's colour, so this is the palette drift: about 0-5 for a style that keeps the photo's colours,
    20 and more when the model paints the photo in the style domain's colours."""
    from PIL import Image, ImageFilter

    output, input = _checked(output, input)
    blur = ImageFilter.GaussianBlur(sigma)  # Pillow's extended-box approximation of a Gaussian of this sigma
    blurred = [np.asarray(Image.fromarray(x).filter(blur), dtype=np.float64) for x in (output, input)]
    return float(np.mean(np.abs(blurred[0] - blurred[1])))
