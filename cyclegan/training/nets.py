"""The four networks grouped in two modules, and an EMA of the generators.

Why pairs: under DDP every prepared module must see gradients for all of its parameters in
the backward that follows its forward. Grouping G_A+G_B in one module (both get gradients
from the cycle losses) and D_A+D_B in another (both get gradients in the discriminator step)
makes that true. In the generator step the discriminators are frozen and called through the
*unwrapped* module, so DDP never expects gradients for them there (see ``step.py``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cyclegan.config import ModelConfig
from cyclegan.models import build_discriminator, build_generator
from cyclegan.models.discriminators import LuminanceInput


class GeneratorPair(nn.Module):
    """G_A: A -> B and G_B: B -> A (the paper's code names)."""

    def __init__(self, g_a: nn.Module, g_b: nn.Module) -> None:
        super().__init__()
        self.g_a = g_a
        self.g_b = g_b

    @classmethod
    def from_config(cls, model_cfg: ModelConfig) -> GeneratorPair:
        return cls(build_generator(model_cfg), build_generator(model_cfg))

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor, identity: bool = True) -> dict[str, torch.Tensor]:
        """Translations, reconstructions and (optionally) identity mappings in one call."""
        fake_b = self.g_a(real_a)
        fake_a = self.g_b(real_b)
        out = {"fake_B": fake_b, "rec_A": self.g_b(fake_b), "fake_A": fake_a, "rec_B": self.g_a(fake_a)}
        if identity:
            out["idt_A"] = self.g_a(real_b)  # G_A should leave B images unchanged
            out["idt_B"] = self.g_b(real_a)
        return out


class DiscriminatorPair(nn.Module):
    """D_A judges domain B images (real B vs G_A's fakes), D_B judges domain A images."""

    def __init__(self, d_a: nn.Module, d_b: nn.Module) -> None:
        super().__init__()
        self.d_a = d_a
        self.d_b = d_b

    @classmethod
    def from_config(cls, model_cfg: ModelConfig) -> DiscriminatorPair:
        if model_cfg.d_a_input == "luminance":
            d_a: nn.Module = LuminanceInput(build_discriminator(model_cfg, input_nc=1))
        else:
            d_a = build_discriminator(model_cfg)
        return cls(d_a, build_discriminator(model_cfg))

    def forward(
        self, real_b: torch.Tensor, fake_b: torch.Tensor, real_a: torch.Tensor, fake_a: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predictions for real and fake images of both domains (separate calls, as the paper's code)."""
        return self.d_a(real_b), self.d_a(fake_b), self.d_b(real_a), self.d_b(fake_a)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(flag)


class Ema:
    """Exponential moving average of a module's parameters (buffers are copied).

    Has ``state_dict``/``load_state_dict`` so ``accelerator.register_for_checkpointing`` saves it.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(module).eval()
        set_requires_grad(self.module, False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for ema_p, p in zip(self.module.parameters(), module.parameters()):
            ema_p.lerp_(p.detach().to(ema_p.dtype), 1.0 - self.decay)
        for ema_b, b in zip(self.module.buffers(), module.buffers()):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
