"""Normalisation layers chosen by name, as ``get_norm_layer`` in the original CycleGAN code."""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import nn

NormFactory = Callable[[int], nn.Module]


def norm_factory(kind: str) -> NormFactory:
    """Return ``num_features -> nn.Module`` for ``instance``, ``batch`` or ``none`` (``contract.card.NormKind``).

    ``instance`` is ``InstanceNorm2d(affine=False, track_running_stats=False)``: per-image statistics
    in training and inference alike, which is what CycleGAN's generators were trained with.
    """
    factories: dict[str, NormFactory] = {
        "instance": functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False),
        "batch": functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True),
        "none": lambda num_features: nn.Identity(),
    }
    return factories[kind]  # the config and the card admit only NormKind


def conv_bias_for(kind: str) -> bool:
    """Whether convolutions followed by this norm carry a bias (the original's ``use_bias``).

    As in the original, only instance norm gets biases: batch norm's shift makes a bias redundant,
    and the original also leaves them out for ``none`` (kept so parameter names and counts match).
    """
    return kind == "instance"
