"""Synthetic unpaired datasets with a known ground-truth mapping, for the training tests.

Domain A: random colour rectangles on a colour gradient. Domain B: *other* images of the same
kind with their RGB channels permuted, so the true A -> B mapping is the channel permutation and
the pairs are unaligned, as in real CycleGAN data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PERM = (1, 2, 0)  # B = A[..., PERM]: (R, G, B) -> (G, B, R)


# Per-channel colour ranges of domain A: reddish, so a channel permutation changes the distribution
# (with identically distributed channels B would look like A and the identity would be a solution).
LOW, HIGH = np.array([140.0, 60.0, 0.0]), np.array([255.0, 190.0, 110.0])


def random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(LOW, HIGH)


def random_scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """An HxWx3 uint8 image: a diagonal gradient between two random colours plus 3 random rectangles."""
    c0, c1 = random_colour(rng), random_colour(rng)
    ramp = np.linspace(0.0, 1.0, size)
    t = (ramp[:, None] + ramp[None, :])[..., None] / 2.0
    img = c0 * (1 - t) + c1 * t
    for _ in range(3):
        h, w = rng.integers(size // 6, size // 2, 2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        img[y : y + h, x : x + w] = random_colour(rng)
    return img.clip(0, 255).astype(np.uint8)


def permute(image: np.ndarray, perm: tuple[int, int, int] = PERM) -> np.ndarray:
    return image[..., list(perm)]


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def make_permuted_dataset(
    root: Path,
    n_train: int = 8,
    n_test: int = 4,
    size: int = 32,
    seed: int = 0,
    perm: tuple[int, int, int] = PERM,
) -> Path:
    """trainA/trainB/testA/testB under ``root``; B images are permuted scenes independent of A's."""
    rng = np.random.default_rng(seed)
    for phase, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            write_png(root / f"{phase}A" / f"a{i:03d}.png", random_scene(rng, size))
            write_png(root / f"{phase}B" / f"b{i:03d}.png", permute(random_scene(rng, size), perm))
    return root


def to_unit_tensor(image: np.ndarray):
    """HxWx3 uint8 -> [1, 3, H, W] float tensor in [-1, 1] (the training normalisation)."""
    import torch

    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div(127.5).sub(1.0).unsqueeze(0)
