"""cyclegan.losses on hand-computed inputs."""

from __future__ import annotations

import math

import pytest
import torch

from cyclegan.losses import GANLoss, cycle_loss, identity_loss, total_variation

PRED = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]]]])  # [1,1,2,2] patch scores


def test_lsgan_is_mse_to_one_or_zero() -> None:
    loss = GANLoss("lsgan")
    assert loss(PRED, True).item() == pytest.approx(((1.0) + 4.0 + 0.25 + 1.0) / 4)
    assert loss(PRED, False).item() == pytest.approx((4.0 + 1.0 + 0.25 + 0.0) / 4)
    # generator step uses the same call: for_discriminator has no effect
    assert loss(PRED, True, for_discriminator=False).item() == loss(PRED, True).item()


def test_vanilla_is_bce_with_logits() -> None:
    loss = GANLoss("vanilla")

    def sp(x):
        return math.log1p(math.exp(x))  # softplus

    xs = [2.0, -1.0, 0.5, 0.0]
    assert loss(PRED, True).item() == pytest.approx(sum(sp(-x) for x in xs) / 4, rel=1e-6)
    assert loss(PRED, False).item() == pytest.approx(sum(sp(x) for x in xs) / 4, rel=1e-6)


def test_hinge_discriminator_and_generator() -> None:
    loss = GANLoss("hinge")
    assert loss(PRED, True).item() == pytest.approx((0 + 2.0 + 0.5 + 1.0) / 4)  # relu(1 - x)
    assert loss(PRED, False).item() == pytest.approx((3.0 + 0 + 1.5 + 1.0) / 4)  # relu(1 + x)
    assert loss(PRED, True, for_discriminator=False).item() == pytest.approx(-(2.0 - 1.0 + 0.5) / 4)
    with pytest.raises(ValueError, match="target_is_real=True"):
        loss(PRED, False, for_discriminator=False)


def test_gradient_pushes_prediction_towards_target() -> None:
    for mode in ("lsgan", "vanilla", "hinge"):
        x = torch.zeros(1, 1, 3, 3, requires_grad=True)
        GANLoss(mode)(x, True).backward()
        assert (x.grad < 0).all(), mode  # descending raises the score of a "real" target


def test_bf16_prediction_keeps_dtype() -> None:
    out = GANLoss("lsgan")(PRED.to(torch.bfloat16), True)
    assert out.dtype == torch.bfloat16


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown gan_mode 'wgan'"):
        GANLoss("wgan")


def test_l1_terms() -> None:
    a = torch.tensor([[0.0, 1.0], [2.0, -3.0]])
    b = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert cycle_loss(a, b).item() == pytest.approx((1 + 0 + 2 + 3) / 4)
    assert identity_loss(a, b).item() == pytest.approx((1 + 0 + 2 + 3) / 4)
    assert cycle_loss(b, b).item() == 0


def test_total_variation_prices_steps_between_neighbours() -> None:
    assert total_variation(torch.full((1, 3, 8, 8), 0.7)).item() == 0  # a flat change costs nothing
    stripes = torch.zeros(1, 1, 8, 8)
    stripes[..., 1::2] = 0.4  # vertical stripes: every horizontal neighbour differs by 0.4, no vertical one
    assert total_variation(stripes).item() == pytest.approx(0.5 * 0.4)
    edge = torch.zeros(1, 1, 8, 8)
    edge[..., 4:] = 0.4  # one outline of the same height costs 7 times less than the stripes
    assert total_variation(edge).item() == pytest.approx(0.5 * 0.4 / 7)
