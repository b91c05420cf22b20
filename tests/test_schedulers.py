"""cyclegan.schedulers: LR at chosen epochs/steps equals the documented formulas; state round trip."""

from __future__ import annotations

import math

import pytest
import torch

from cyclegan.config import OptimConfig
from cyclegan.schedulers import build_scheduler

LR = 2e-4


def lrs(cfg: OptimConfig, n: int, steps_per_epoch: int = 10) -> list[float]:
    """The LR in effect during each of the first ``n`` scheduler intervals."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def paper_linear(epoch: int, n_epochs: int, n_decay: int) -> float:
    # lambda_rule of junyanz/pytorch-CycleGAN-and-pix2pix with epoch_count=1
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_decay + 1)


def test_linear_per_epoch_matches_paper_code() -> None:
    cfg = OptimConfig(scheduler="linear", n_epochs=100, n_epochs_decay=100)
    got = lrs(cfg, 200)
    for epoch in (0, 50, 99, 100, 101, 150, 199):
        assert got[epoch] == pytest.approx(LR * paper_linear(epoch, 100, 100), rel=1e-12)
    assert got[99] == LR and got[100] < LR
    assert got[199] == pytest.approx(LR / 101)


def test_linear_per_step_is_same_curve_sampled_finer() -> None:
    spe = 4
    cfg = OptimConfig(scheduler="linear", n_epochs=2, n_epochs_decay=3, interval="step")
    per_step = lrs(cfg, 5 * spe, steps_per_epoch=spe)
    per_epoch = lrs(OptimConfig(scheduler="linear", n_epochs=2, n_epochs_decay=3), 5)
    assert per_step[::spe] == pytest.approx(per_epoch)  # agree at epoch starts
    for s in (5, 6, 9, 13, 19):
        t = s / spe
        assert per_step[s] == pytest.approx(LR * (1 - max(0.0, t + 1 - 2) / 4))
    assert all(a >= b for a, b in zip(per_step, per_step[1:]))  # monotone non-increasing


def test_cosine() -> None:
    cfg = OptimConfig(scheduler="cosine", n_epochs=5, n_epochs_decay=5)
    got = lrs(cfg, 12)
    for e in (0, 3, 5, 9, 10, 11):
        assert got[e] == pytest.approx(LR * 0.5 * (1 + math.cos(math.pi * min(e, 10) / 10)), abs=1e-15)
    assert got[10] == pytest.approx(0.0, abs=1e-15)


def test_step_decay_per_epoch_and_per_step() -> None:
    cfg = OptimConfig(scheduler="step", step_size=3, gamma=0.5)
    got = lrs(cfg, 8)
    assert got == pytest.approx([LR] * 3 + [LR / 2] * 3 + [LR / 4] * 2)
    cfg_s = OptimConfig(scheduler="step", step_size=1, gamma=0.1, interval="step")
    got_s = lrs(cfg_s, 7, steps_per_epoch=3)
    assert got_s == pytest.approx([LR] * 3 + [LR * 0.1] * 3 + [LR * 0.01])


def test_constant_with_warmup() -> None:
    cfg = OptimConfig(scheduler="constant", warmup_epochs=2, interval="step")
    got = lrs(cfg, 12, steps_per_epoch=4)
    for s in range(12):
        assert got[s] == pytest.approx(LR * min(1.0, (s + 1) / 8))
    assert got[0] > 0
    per_epoch = lrs(OptimConfig(scheduler="constant", warmup_epochs=2), 3)
    assert per_epoch == pytest.approx([LR / 2, LR, LR])


def test_warmup_multiplies_linear_curve() -> None:
    cfg = OptimConfig(scheduler="linear", n_epochs=1, n_epochs_decay=4, warmup_epochs=3)
    got = lrs(cfg, 5)
    for e in range(5):
        assert got[e] == pytest.approx(LR * paper_linear(e, 1, 4) * min(1.0, (e + 1) / 3))


def test_state_dict_round_trip(tmp_path) -> None:
    cfg = OptimConfig(scheduler="linear", n_epochs=2, n_epochs_decay=6, interval="step")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    sched = build_scheduler(opt, cfg, steps_per_epoch=5)
    for _ in range(17):
        opt.step()
        sched.step()
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    opt2 = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    sched2 = build_scheduler(opt2, cfg, steps_per_epoch=5)
    sched2.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert sched2.last_epoch == 17
    for _ in range(10):
        opt.step(), opt2.step()
        sched.step(), sched2.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        assert sched2.get_last_lr() == sched.get_last_lr()
    assert opt.param_groups[0]["lr"] == pytest.approx(LR * (1 - max(0.0, 27 / 5 + 1 - 2) / 7))


def test_rejects_bad_steps_per_epoch() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    with pytest.raises(ValueError, match="steps_per_epoch must be > 0"):
        build_scheduler(opt, OptimConfig(interval="step"), 0)
