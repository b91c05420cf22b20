"""The optional image skip (``model.global_skip``): the generator predicts a change to its input picture.

``output = clamp(input + network(input), -1, 1)`` with the network's last convolution initialised to zero, so a
fresh generator returns its input exactly and training only ever edits the photo. It carries the input's colours
through (instance norm in the first layers removes each picture's mean colour, which a plain generator must then
guess: the random palettes of short runs) and starts both generators at the identity with no warm-up steps.
Needs as many output channels as input channels.
"""

from __future__ import annotations

import torch
from torch import nn


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
