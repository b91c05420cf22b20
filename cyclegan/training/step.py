"""One CycleGAN iteration as in the paper's code: generator step (D frozen), then discriminator step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cyclegan.augment import diff_augment
from cyclegan.config import LossConfig
from cyclegan.losses import GANLoss, cycle_loss, identity_loss, total_variation
from cyclegan.training.nets import set_requires_grad
from cyclegan.training.state import ProcessPools


@dataclass
class StepModules:
    """Prepared (possibly DDP-wrapped) modules and optimizers, plus the unwrapped discriminators."""

    generators: nn.Module  # accelerator.prepare(GeneratorPair)
    discriminators: nn.Module  # accelerator.prepare(DiscriminatorPair)
    raw_discriminators: nn.Module  # accelerator.unwrap_model(discriminators): used in the G step
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer


class CycleGANStep:
    """Computes the losses and applies both optimizer steps; returns the detached loss tensors.

    DDP: the G step calls the discriminators through the *unwrapped* module with their
    parameters frozen, so D's reducer is only armed by the D step's forward, in which every D
    parameter receives a gradient; G_A and G_B (one DDP module) both get gradients from the
    cycle losses. No ``find_unused_parameters`` needed, and gradients are all-reduced exactly once.
    """

    def __init__(
        self,
        accelerator,
        modules: StepModules,
        loss_cfg: LossConfig,
        pools: ProcessPools,
        augment: tuple[str, ...] = (),
    ) -> None:
        self.acc = accelerator
        self.m = modules
        self.cfg = loss_cfg
        self.pools = pools
        self.gan = GANLoss(loss_cfg.gan_mode)
        self.use_identity = loss_cfg.lambda_identity > 0
        self.augment = augment  # DiffAugment policy applied to every discriminator input
        # loss.lambda_change_tv prices G_A's change over its skip (a fixed filter: buffers, no weights)
        self.skip_a = (
            accelerator.unwrap_model(modules.generators).g_a.skip_source if loss_cfg.lambda_change_tv else None
        )

    def __call__(self, real_a: torch.Tensor, real_b: torch.Tensor, *, warmup: bool = False) -> dict[str, torch.Tensor]:
        if warmup:
            return self.identity_warmup(real_a, real_b)
        cfg, m, aug = self.cfg, self.m, self.augment
        # --- generators, discriminators frozen ---------------------------------------------------
        set_requires_grad(m.raw_discriminators, False)
        m.opt_g.zero_grad(set_to_none=True)
        with self.acc.autocast():
            out = m.generators(real_a, real_b, identity=self.use_identity)
            loss_g_a = self.gan(
                m.raw_discriminators.d_a(diff_augment(out["fake_B"], aug)), True, for_discriminator=False
            )
            loss_g_b = self.gan(
                m.raw_discriminators.d_b(diff_augment(out["fake_A"], aug)), True, for_discriminator=False
            )
            loss_cycle_a = cycle_loss(out["rec_A"], real_a) * cfg.lambda_a
            loss_cycle_b = cycle_loss(out["rec_B"], real_b) * cfg.lambda_b
            if self.use_identity:
                loss_idt_a = identity_loss(out["idt_A"], real_b) * cfg.lambda_b * cfg.lambda_identity
                loss_idt_b = identity_loss(out["idt_B"], real_a) * cfg.lambda_a * cfg.lambda_identity
            else:
                loss_idt_a = loss_idt_b = torch.zeros((), device=real_a.device)
            if self.skip_a is not None:
                with torch.no_grad():
                    skip_a = self.skip_a(real_a)
                loss_change_tv_a = total_variation(out["fake_B"] - skip_a) * cfg.lambda_change_tv
            else:
                loss_change_tv_a = torch.zeros((), device=real_a.device)
            loss_g = loss_g_a + loss_g_b + loss_cycle_a + loss_cycle_b + loss_idt_a + loss_idt_b + loss_change_tv_a
        self.acc.backward(loss_g)
        m.opt_g.step()
        set_requires_grad(m.raw_discriminators, True)

        # --- discriminators on pooled fakes -------------------------------------------------------
        fake_b = self.pools.fake_b.query(out["fake_B"].detach().float())
        fake_a = self.pools.fake_a.query(out["fake_A"].detach().float())
        m.opt_d.zero_grad(set_to_none=True)
        with self.acc.autocast():
            pred_real_b, pred_fake_b, pred_real_a, pred_fake_a = m.discriminators(
                *(diff_augment(x, aug) for x in (real_b, fake_b, real_a, fake_a))
            )
            loss_d_a = 0.5 * (self.gan(pred_real_b, True) + self.gan(pred_fake_b, False))
            loss_d_b = 0.5 * (self.gan(pred_real_a, True) + self.gan(pred_fake_a, False))
        self.acc.backward(loss_d_a + loss_d_b)
        m.opt_d.step()

        return _detached(
            {
                "loss/G_A": loss_g_a,
                "loss/G_B": loss_g_b,
                "loss/cycle_A": loss_cycle_a,
                "loss/cycle_B": loss_cycle_b,
                "loss/idt_A": loss_idt_a,
                "loss/idt_B": loss_idt_b,
                "loss/change_tv_A": loss_change_tv_a,
                "loss/D_A": loss_d_a,
                "loss/D_B": loss_d_b,
            }
        )

    def identity_warmup(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """A generator-only step towards the identity mapping (``train.identity_warmup_steps``).

        A freshly initialised generator outputs noise; the first GAN steps then teach a random palette and
        texture that the rest of a short run never unlearns. Starting both generators from "return the photo"
        makes the adversarial steps edit the picture instead of inventing one. The losses are logged as the
        identity losses; the discriminators and the pools are untouched.
        """
        m = self.m
        m.opt_g.zero_grad(set_to_none=True)
        with self.acc.autocast():
            out = m.generators(real_a, real_b, identity=False)
            loss_idt_a = identity_loss(out["fake_B"], real_a)
            loss_idt_b = identity_loss(out["fake_A"], real_b)
        self.acc.backward(loss_idt_a + loss_idt_b)
        m.opt_g.step()
        m.opt_d.zero_grad(set_to_none=True)
        m.opt_d.step()  # no gradients: the weights stay, and the LR schedulers see a stepped optimizer
        zero = torch.zeros((), device=real_a.device)
        return _detached(
            {
                "loss/G_A": zero,
                "loss/G_B": zero,
                "loss/cycle_A": zero,
                "loss/cycle_B": zero,
                "loss/idt_A": loss_idt_a,
                "loss/idt_B": loss_idt_b,
                "loss/change_tv_A": zero,
                "loss/D_A": zero,
                "loss/D_B": zero,
            }
        )


def _detached(losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().float() for k, v in losses.items()}  # no host sync here
