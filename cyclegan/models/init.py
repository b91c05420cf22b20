"""Weight initialisation, as ``init_weights`` in the original CycleGAN code."""

from __future__ import annotations

import torch
from torch import nn


def init_weights(
    net: nn.Module,
    init_type: str = "normal",
    init_gain: float = 0.02,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Initialise conv/linear weights by ``init_type`` (``config.InitKind``) and zero their biases; BatchNorm
    gets N(1, gain).

    ``kaiming`` ignores ``init_gain`` (``fan_in``, a=0), exactly like the original. Pass ``generator``
    for an initialisation independent of the global RNG. Returns ``net`` for chaining.
    """

    @torch.no_grad()
    def init_module(m: nn.Module) -> None:
        weight = getattr(m, "weight", None)
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) and weight is not None:
            if init_type == "normal":
                nn.init.normal_(weight, 0.0, init_gain, generator=generator)
            elif init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=init_gain, generator=generator)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in", generator=generator)
            elif init_type == "orthogonal":
                nn.init.orthogonal_(weight, gain=init_gain, generator=generator)
            else:
                raise ValueError(f"unknown init_type {init_type!r}")  # the config admits only InitKind
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and weight is not None:
            nn.init.normal_(weight, 1.0, init_gain, generator=generator)
            nn.init.zeros_(m.bias)

    net.apply(init_module)
    return net
