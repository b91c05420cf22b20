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
