"""Learning-rate schedules defined in epochs, stepped per epoch or per optimizer step.

All schedules are a multiplier ``f(t)`` of the base LR, with ``t`` in (fractional) epochs, wrapped in
a standard :class:`torch.optim.lr_scheduler.LambdaLR`:

* ``linear`` (the paper's code, ``lambda_rule`` with ``epoch_count=1``):
  ``f(t) = 1 - max(0, t + 1 - n_epochs) / (n_epochs_decay + 1)``. Sampled at epochs 0..n_epochs-1 it
  is 1; over the next ``n_epochs_decay`` epochs it falls linearly and would reach 0 at
  ``t = n_epochs + n_epochs_decay`` (the end of training; the last epoch runs at ``1/(n_epochs_decay+1)``).
* ``cosine``: ``f(t) = (1 + cos(pi * min(t, T) / T)) / 2`` with ``T = n_epochs + n_epochs_decay``.
* ``step``: ``f(t) = gamma ** floor(t / step_size)``.
* ``constant``: ``f(t) = 1``.

With ``warmup_epochs = W > 0`` the multiplier is scaled by ``min(1, (t + u) / W)``, where ``u`` is one
scheduler interval (1 epoch, or ``1/steps_per_epoch`` for ``interval="step"``), so the first interval
already trains at a small non-zero LR.

``interval="epoch"``: ``scheduler.step()`` once per epoch, ``t = k``. ``interval="step"``: once per
optimizer step, ``t = k / steps_per_epoch`` -- the same curve sampled finer (both agree at epoch starts).
The curve is always rebuilt from the config; ``state_dict`` holds only the position, so a resumed run
continues where it stopped.

Note for Accelerate: a scheduler passed through ``accelerator.prepare`` steps ``num_processes`` times per
call unless ``split_batches`` / ``step_scheduler_with_optimizer`` say otherwise; set ``steps_per_epoch``
accordingly or keep the scheduler unprepared.
"""

from __future__ import annotations

import math
from fractions import Fraction

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from cyclegan.config import OptimConfig


def lr_multiplier(optim_cfg: OptimConfig, t: float | Fraction, unit: float | Fraction = 1) -> float:
    """The LR multiplier at epoch ``t`` (see the module docstring); ``unit`` is one scheduler interval in epochs."""
    kind = optim_cfg.scheduler
    if kind == "linear":
        f = 1.0 - max(0.0, float(t) + 1 - optim_cfg.n_epochs) / (optim_cfg.n_epochs_decay + 1)
        f = max(0.0, f)
    elif kind == "cosine":
        total = optim_cfg.n_epochs + optim_cfg.n_epochs_decay
        f = 0.5 * (1.0 + math.cos(math.pi * min(float(t), total) / total))
    elif kind == "step":
        f = optim_cfg.gamma ** math.floor(Fraction(t) / optim_cfg.step_size)
    elif kind == "constant":
        f = 1.0
    else:
        raise ValueError(f"unknown scheduler {kind!r}")  # the config admits only SchedulerKind
    if optim_cfg.warmup_epochs > 0:
        f *= min(1.0, float(Fraction(t) + Fraction(unit)) / optim_cfg.warmup_epochs)
    return f


def build_scheduler(optimizer: Optimizer, optim_cfg: OptimConfig, steps_per_epoch: int) -> LRScheduler:
    """A ``LambdaLR`` following ``optim_cfg`` (kind, warmup, interval); see the module docstring."""
    if optim_cfg.interval == "step":
        if steps_per_epoch <= 0:
            raise ValueError(f"steps_per_epoch must be > 0 for interval='step', got {steps_per_epoch}")
        unit = Fraction(1, steps_per_epoch)
    else:
        unit = Fraction(1)

    def multiplier(k: int) -> float:
        return lr_multiplier(optim_cfg, k * unit, unit)

    return LambdaLR(optimizer, multiplier)
