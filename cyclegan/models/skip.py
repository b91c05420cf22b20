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


class ColorMLP(nn.Module):
    """A learned per-pixel colour curve at the output (``model.color_mlp``): ``clamp(y + mlp(y), -1, 1)``.

    Two hidden 1x1 convolutions of ``hidden`` channels. A cartoon's palette (a few flat colours) is a non-linear
    function of each pixel's *absolute* colour, which the instance-normalised network cannot see; this head sees
    the finished colours and can snap them. Its last layer starts at zero (a fresh head changes nothing) and it is
    per pixel, so tiles and video need nothing new.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.ReLU(True),
            nn.Conv2d(hidden, hidden, kernel_size=1),
            nn.ReLU(True),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return add_to_image(y, self.mlp(y))


def color_head(channels: int, hidden: int) -> nn.Module:
    """The colour MLP, or a parameter-free identity when ``hidden`` is 0 (saved keys unchanged)."""
    return ColorMLP(channels, hidden) if hidden else nn.Identity()


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


@torch.no_grad()
def reset_color_mlp(net: nn.Module) -> nn.Module:
    """Start every :class:`ColorMLP` in ``net`` at no change, its hidden layers with PyTorch's default init.

    Called after ``init_weights``, whose N(0, 0.02) would leave the hidden units near zero and all alike; the
    default spreads their ReLU breakpoints over the colour range.
    """
    for module in net.modules():
        if isinstance(module, ColorMLP):
            for layer in module.mlp:
                if isinstance(layer, nn.Conv2d):
                    layer.reset_parameters()
            zero_last_conv(module)
    return net
