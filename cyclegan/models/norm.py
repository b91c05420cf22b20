"""Normalisation layers chosen by name, as ``get_norm_layer`` in the original CycleGAN code."""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn

NormFactory = Callable[[int], nn.Module]

NORM_KINDS = ("instance", "batch", "none")


def norm_factory(kind: str) -> NormFactory:
    """Return ``num_features -> nn.Module`` for ``instance``, ``batch`` or ``none``.

    ``instance`` is ``InstanceNorm2d(affine=False, track_running_stats=False)``: per-image statistics
    in training and inference alike, which is what CycleGAN's generators were trained with.
    """
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "none":
        return lambda num_features: nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: expected one of {', '.join(map(repr, NORM_KINDS))}")


def conv_bias_for(kind: str) -> bool:
    """Whether convolutions followed by this norm carry a bias (the original's ``use_bias``).

    As in the original, only instance norm gets biases: batch norm's shift makes a bias redundant,
    and the original also leaves them out for ``none`` (kept so parameter names and counts match).
    """
    if kind not in NORM_KINDS:
        raise ValueError(f"unknown norm {kind!r}: expected one of {', '.join(map(repr, NORM_KINDS))}")
    return kind == "instance"
