"""The per-image scores (cyclegan.evaluation.scores): paired scores and the checkerboard score."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from synthetic import random_scene

from cyclegan.evaluation import scores


def photo(seed: int = 0, size: int = 96) -> np.ndarray:
    """A synthetic 'photo': gradient and rectangles plus mild sensor noise (some energy at every frequency)."""
    rng = np.random.default_rng(seed)
    noisy = random_scene(rng, size).astype(np.float64) + rng.normal(0, 3, (size, size, 3))
    return noisy.clip(0, 255).astype(np.uint8)


def checkerboard_overlay(image: np.ndarray, amplitude: float = 8.0) -> np.ndarray:
    """What a stride-2 transposed convolution leaves: a +-amplitude pattern repeating every 2 pixels."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    grid = np.where((yy + xx) % 2 == 0, amplitude, -amplitude) + np.where(yy % 2 == 0, amplitude / 2, 0)
    return (image.astype(np.float64) + grid[..., None]).clip(0, 255).astype(np.uint8)


def test_paired_scores_of_identical_and_known_images() -> None:
    a = photo()
    assert scores.mae(a, a) == 0.0
    assert scores.psnr(a, a) == scores.PSNR_CAP
    assert scores.ssim(a, a) == pytest.approx(1.0)
    b = (a.astype(np.int16) + 10).clip(0, 255).astype(np.uint8)
    diff = b.astype(np.float64) - a
    assert scores.mae(a, b) == pytest.approx(np.abs(diff).mean())
    assert scores.psnr(a, b) == pytest.approx(10 * np.log10(255**2 / (diff**2).mean()))
    assert 0.5 < scores.ssim(a, b) < 1.0
    # symmetric, and a different photo is far less similar
    assert scores.mae(a, b) == scores.mae(b, a)
    other = photo(seed=1)
    assert scores.ssim(a, other) < scores.ssim(a, b)
    assert scores.psnr(a, other) < scores.psnr(a, b)


def test_checkerboard_overlay_scores_clearly_above_one_identity_about_one() -> None:
    for seed in range(3):
        a = photo(seed)
        assert scores.checkerboard_score(a, a) == pytest.approx(1.0)
        # the same photo shifted by a pixel (no grid added) stays near 1
        assert 0.7 < scores.checkerboard_score(np.roll(a, 1, axis=(0, 1)), a) < 1.4
        grid = scores.checkerboard_score(checkerboard_overlay(a), a)
        assert grid > 5.0, grid
        assert scores.checkerboard_score(checkerboard_overlay(a, 2.0), a) < grid  # weaker grid, lower score
    # a smoothed output has less energy at the 2-pixel period than its input
    a = photo()
    blurred = ((a[:-1, :-1].astype(np.float64) + a[1:, 1:] + a[:-1, 1:] + a[1:, :-1]) / 4).astype(np.uint8)
    assert scores.checkerboard_score(blurred, a[:-1, :-1]) < 0.5


def test_odd_sizes_flat_images_and_bad_inputs() -> None:
    a = photo(size=33)[:, :31]  # odd sizes have no exact Nyquist bin: the band still covers its neighbours
    assert scores.checkerboard_score(checkerboard_overlay(a), a) > 5.0
    flat = np.full((16, 16, 3), 128, np.uint8)
    assert scores.checkerboard_score(flat, flat) == 1.0
    assert scores.ssim(photo(size=5), photo(size=5)) == pytest.approx(1.0)  # a window that fits
    with pytest.raises(ValueError, match="different sizes"):
        scores.mae(photo(size=16), photo(size=17))
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        scores.psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        scores.checkerboard_score(np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.float32))


def test_scores_import_no_torch_in_a_real_process() -> None:
    code = "import sys, cyclegan.evaluation.scores as s; s.ssim; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_sharp_flat_colours_and_outlines_are_not_a_grid() -> None:
    """A clean cartoon of a scene (4 levels per channel, dark outlines) has far more high-frequency energy than a
    photo, but no spike at the 2-pixel period: it must score near 1, a grid over the same cartoon well above."""
    for seed in range(3):
        cartoon = (np.round(random_scene(np.random.default_rng(seed), 96) / 255 * 3) * 85).astype(np.uint8)
        grey = cartoon.astype(np.float64).mean(axis=2)
        cartoon[(np.abs(np.diff(grey, axis=0, prepend=0)) + np.abs(np.diff(grey, axis=1, prepend=0))) > 20] = 20
        clean = scores.checkerboard_score(cartoon, photo(seed))
        assert clean < 2.0, clean
        assert scores.checkerboard_score(checkerboard_overlay(cartoon, 8.0), photo(seed)) > 2 * clean


def test_flatness_counts_flat_areas_noise_and_grids_lower_it() -> None:
    assert scores.flatness(np.full((12, 12, 3), 77, np.uint8)) == 1.0
    a = photo()
    cartoon = (np.round(random_scene(np.random.default_rng(0), 96) / 255 * 3) * 85).astype(np.uint8)
    assert scores.flatness(cartoon) > scores.flatness(a) + 0.3  # posterized flat colours vs. a noisy photo
    assert scores.flatness(checkerboard_overlay(cartoon)) < 0.05  # a grid leaves no flat pixel
    # exactly: a step of 7 grey levels is not flat on its two bordering columns, 6 levels is flat everywhere
    step = np.zeros((10, 10, 3), np.uint8)
    step[:, 5:] = 7
    assert scores.flatness(step) == pytest.approx(0.8)
    step[:, 5:] = 6
    assert scores.flatness(step) == 1.0
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        scores.flatness(np.zeros((4, 4), np.uint8))


def test_colour_shift_sees_the_palette_not_the_edges() -> None:
    a = photo()
    assert scores.colour_shift(a, a) == 0.0
    tinted = (a.astype(np.int16) + [30, 0, -30]).clip(0, 255).astype(np.uint8)
    assert 15 < scores.colour_shift(tinted, a) < 21  # about (30 + 0 + 30) / 3, less what the clipping took
    # outlines drawn over the photo (what a cartoon style adds) move the palette far less than a tint
    outlined = a.copy()
    outlined[::16] = 0
    assert scores.colour_shift(outlined, a) < scores.colour_shift(tinted, a) / 2
    # and a grid, which averages out under the blur, hardly at all
    assert scores.colour_shift(checkerboard_overlay(a), a) < 3
    with pytest.raises(ValueError, match="different sizes"):
        scores.colour_shift(photo(size=16), photo(size=17))
