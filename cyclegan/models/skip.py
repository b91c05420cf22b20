"""The optional image skip (``model.global_skip``): the generator predicts a change to its input picture.

``output = clamp(input + network(input), -1, 1)`` with the network's last convolution initialised to zero, so a
fresh generator returns its input exactly and training only ever edits the photo. It carries the input's colours
through (instance norm in the first layers removes each picture's mean colour, which a plain generator must then
guess: the random palettes of short runs) and starts both generators at the identity with no warm-up steps.
Needs as many output channels as input channels.

``model.skip_blur`` (sigma in pixels, 0 = off) adds a Gaussian blur of the input instead of the input itself:
``output = clamp(blur(input) + network(input), -1, 1)``, with the last convolution initialised as usual (the
identity is not on offer). The blurred picture carries the colours (what instance norm hides from the network)
but no detail, so the network draws every edge and flat area of the style itself -- with the sharp input in the
skip, its cheapest answer is to leave the photo as it is (``benchmarks/quality.py``: MAE 29.6 with a 3 px blur
against 29.0 for the plain skip, which only darkens a few edges, and 43.1 without a skip, whose colours drift).
It is a local operation (tiles and video need nothing new), with a fixed kernel outside the state dict.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SkipSource(nn.Module):
    """What the skip adds the network's output to: the input itself (``sigma == 0``) or a Gaussian blur of it."""

    def __init__(self, channels: int, sigma: float = 0.0) -> None:
        super().__init__()
        self.channels, self.sigma = channels, sigma
        self.radius = math.ceil(3 * sigma) if sigma > 0 else 0
        t = torch.arange(-self.radius, self.radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(t**2) / (2 * sigma**2)) if sigma > 0 else torch.ones(1)
        kernel = (kernel / kernel.sum()).repeat(channels, 1)  # one separable kernel per channel
        # Buffers, not weights: kept out of the state dict, so saved generators have the same keys either way.
        self.register_buffer("row_kernel", kernel.view(channels, 1, 1, -1).clone(), persistent=False)
        self.register_buffer("column_kernel", kernel.view(channels, 1, -1, 1).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.radius:
            return x
        r = self.radius
        x = F.pad(x, (r, r, r, r), mode="replicate")  # replicate, unlike reflect, accepts any image size
        x = F.conv2d(x, self.row_kernel.to(x.dtype), groups=self.channels)
        return F.conv2d(x, self.column_kernel.to(x.dtype), groups=self.channels)


def add_to_image(image: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    return (image + change).clamp(-1.0, 1.0)


@torch.no_grad()
def zero_last_conv(net: nn.Module) -> nn.Module:
    """Zero the weights and bias of the last (transposed) convolution: the change starts at exactly zero."""
    last = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    last.weight.zero_()
    if last.bias is not None:
        last.bias.zero_()
    return net
