"""The pixel convention between images and generators: 8-bit RGB <-> ``(rgb / 255 - mean) / std``.

CycleGAN works in [-1, 1] (mean = std = 0.5 per channel, written into every card); generator outputs (tanh) live
in the same space. These are the numpy forms used by serving and calibration; the torch twins for training are
in :mod:`cyclegan.models.pixels` and use the same constants.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
# Luminance from RGB (ITU-R BT.601, as Pillow's convert("L")): the scores' flatness and checkerboard, and D_A's
# input with model.d_a_input=luminance.
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


def _per_channel(values: Sequence[float], channels: int) -> np.ndarray:
    return np.asarray(values[:channels], dtype=np.float32).reshape(1, channels, 1, 1)


def to_model(images: np.ndarray, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> np.ndarray:
    """uint8 images ``[N, H, W, C]`` -> float32 ``[N, C, H, W]`` in the model's space."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 [N, H, W, C] images, got {images.dtype} {images.shape}")
    x = images.transpose(0, 3, 1, 2).astype(np.float32)
    channels = x.shape[1]
    std_ = _per_channel(std, channels)
    x /= 255.0 * std_  # in place, and the same operations as the torch twin (bit-identical results)
    x -= _per_channel(mean, channels) / std_
    return x


def from_model(outputs: np.ndarray, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> np.ndarray:
    """Model outputs ``[N, C, H, W]`` (any float dtype) -> uint8 images ``[N, H, W, C]`` (rounded, clipped)."""
    y = np.array(outputs, dtype=np.float32)  # a fresh copy, modified in place
    channels = y.shape[1]
    y *= 255.0 * _per_channel(std, channels)
    y += 255.0 * _per_channel(mean, channels)
    np.rint(y, out=y)
    np.clip(y, 0, 255, out=y)
    return y.astype(np.uint8).transpose(0, 2, 3, 1)
