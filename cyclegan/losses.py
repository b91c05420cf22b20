"""CycleGAN objectives: the adversarial loss in three flavours, the L1 cycle/identity terms, and the total variation
of a generator's change over its skip (``loss.lambda_change_tv``)."""

from __future__ import annotations

from typing import get_args

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan.config import GanMode


class GANLoss(nn.Module):
    """Adversarial loss on raw discriminator outputs (logits / patch scores).

    * ``lsgan``: mean squared error to 1 (real) or 0 (fake), as in the paper.
    * ``vanilla``: binary cross-entropy with logits.
    * ``hinge``: discriminator ``relu(1 - x)`` for real, ``relu(1 + x)`` for fake; generator ``-mean(x)``.

    For lsgan/vanilla the generator uses the same call with ``target_is_real=True``; ``for_discriminator``
    only matters for hinge. Targets are built with ``full_like`` so device and dtype follow the prediction.
    """

    def __init__(self, gan_mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if gan_mode not in get_args(GanMode):
            raise ValueError(f"unknown gan_mode {gan_mode!r}: expected one of {', '.join(get_args(GanMode))}")
        self.gan_mode = gan_mode
        self.real_label = real_label
        self.fake_label = fake_label

    def forward(self, prediction: torch.Tensor, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        if self.gan_mode == "hinge":
            if not for_discriminator:
                if not target_is_real:
                    raise ValueError("hinge generator loss is only defined for target_is_real=True")
                return -prediction.mean()
            margin = 1.0 - prediction if target_is_real else 1.0 + prediction
            return F.relu(margin).mean()
        target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
        if self.gan_mode == "lsgan":
            return F.mse_loss(prediction, target)
        return F.binary_cross_entropy_with_logits(prediction, target)


def cycle_loss(rec: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 between the reconstruction F(G(x)) and x (unweighted; lambda_a/lambda_b apply outside)."""
    return F.l1_loss(rec, real)


def identity_loss(idt: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 between G(y) and y (unweighted; the original weights it by lambda_identity * lambda_b/a)."""
    return F.l1_loss(idt, real)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: the mean absolute difference between vertical neighbours plus that between
    horizontal ones, halved (a constant picture scores 0, stripes of amplitude ``a`` about ``a``)."""
    return 0.5 * ((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())
