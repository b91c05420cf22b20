"""Differentiable augmentation of the discriminators' inputs (DiffAugment; Zhao, Liu, Lin, Zhu, Han, NeurIPS 2020).

With a few hundred training images a discriminator memorises the real set and its gradients stop teaching the
generator anything. DiffAugment applies the same kind of random colour, translation and cutout changes to real
and generated images every time the discriminator sees them; every change is differentiable, so the generator
still gets gradients through it. Follows the authors' reference implementation (mit-han-lab/data-efficient-gans),
on images in [-1, 1]; random numbers come from torch's generator, so runs stay reproducible and resumable.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from cyclegan.config import DIFFAUGMENT_POLICIES


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)


def saturation(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + mean


def contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros (mid-grey)."""
    n, _, h, w = x.shape
    shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-shift_h, shift_h + 1, size=[n, 1, 1], device=x.device)
    dx = torch.randint(-shift_w, shift_w + 1, size=[n, 1, 1], device=x.device)
    grid_n, grid_y, grid_x = _grid(n, h, w, x.device)
    grid_y = torch.clamp(grid_y + dy + 1, 0, h + 1)
    grid_x = torch.clamp(grid_x + dx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1).contiguous()[grid_n, grid_y, grid_x].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero (mid-grey) one random rectangle of ``ratio`` times the image size per image."""
    n, _, h, w = x.shape
    cut_h, cut_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - cut_h % 2), size=[n, 1, 1], device=x.device)
    ox = torch.randint(0, w + (1 - cut_w % 2), size=[n, 1, 1], device=x.device)
    grid_n, grid_y, grid_x = _grid(n, cut_h, cut_w, x.device)
    grid_y = torch.clamp(grid_y + oy - cut_h // 2, min=0, max=h - 1)
    grid_x = torch.clamp(grid_x + ox - cut_w // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[grid_n, grid_y, grid_x] = 0
    return x * mask.unsqueeze(1)


def _grid(n: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    return torch.meshgrid(
        torch.arange(n, device=device), torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
    )


POLICIES: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
    "color": [brightness, saturation, contrast],
    "translation": [translation],
    "cutout": [cutout],
}
assert tuple(POLICIES) == DIFFAUGMENT_POLICIES


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """``x`` with every transform of ``policy`` (``TrainConfig.diffaugment_policy``) applied; () is a no-op."""
    for name in policy:
        for transform in POLICIES[name]:
            x = transform(x)
    return x
