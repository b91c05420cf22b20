"""Input-size rules of the generators, and padding/cropping to satisfy them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

_MULTIPLES = {"resnet_9blocks": 4, "resnet_6blocks": 4, "unet_128": 128, "unet_256": 256}
# ResNet: the residual blocks reflect-pad by 1 at 1/4 resolution, so each side needs >= 2 there.
RESNET_MIN_SIDE = 8


class InputSizeError(ValueError):
    """An image's height or width is not a multiple the generator can process."""


def size_multiple(generator_kind: str) -> int:
    """Height and width must be multiples of this (4 for resnet_*, 2**num_downs for unet_*)."""
    try:
        return _MULTIPLES[generator_kind]
    except KeyError:
        raise ValueError(
            f"unknown generator {generator_kind!r}: expected one of {', '.join(map(repr, _MULTIPLES))}"
        ) from None


def check_input_size(generator_kind: str, h: int, w: int) -> None:
    """Raise :class:`InputSizeError` unless ``h`` and ``w`` are positive multiples of the generator's multiple."""
    multiple = size_multiple(generator_kind)
    min_side = RESNET_MIN_SIDE if generator_kind.startswith("resnet_") else multiple
    check_multiple(generator_kind, multiple, h, w, min_side)


def check_multiple(name: str, multiple: int, h: int, w: int, min_side: int = 0) -> None:
    """Raise :class:`InputSizeError` naming ``multiple`` unless ``h`` and ``w`` are multiples of it, >= ``min_side``."""
    low = max(multiple, min_side)
    if h < low or w < low or h % multiple or w % multiple:
        m = multiple
        at_least = f" and at least {low}" if low > m else ""
        raise InputSizeError(
            f"{name} needs height and width that are multiples of {m}{at_least}, got {h}x{w} (HxW); "
            f"pad or resize to e.g. {max(low, -(-h // m) * m)}x{max(low, -(-w // m) * m)} "
            "(cyclegan.models.pad_to_multiple pads and crop_back undoes it)"
        )


def is_tracing() -> bool:
    """True while torch.jit / torch.compile / torch.export / torch.onnx trace the model (checks are skipped)."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    if compiler is not None:
        if getattr(compiler, "is_compiling", lambda: False)():
            return True
        if getattr(compiler, "is_exporting", lambda: False)():
            return True
    return False


def _pad_dim(x: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
    """Pad the end of H (dim=-2) or W (dim=-1); reflect where possible, else replicate (reflect needs amount < size)."""
    if amount == 0:
        return x
    pad = (0, amount, 0, 0) if dim == -1 else (0, 0, 0, amount)
    mode = "reflect" if amount < x.shape[dim] else "replicate"
    return F.pad(x, pad, mode=mode)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom/right of ``x`` ([N,]C,H,W) up to multiples of ``multiple``; returns (padded, (h, w)).

    Reflect padding keeps the border statistics natural; a side too small to reflect (pad >= side)
    falls back to replicate padding. ``crop_back(y, (h, w))`` restores the original size.
    """
    if multiple <= 0:
        raise ValueError(f"multiple must be > 0, got {multiple}")
    if x.dim() not in (3, 4):
        raise ValueError(f"expected a [C,H,W] or [N,C,H,W] tensor, got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h <= 0 or w <= 0:
        raise ValueError(f"cannot pad an empty image of size {h}x{w}")
    x = _pad_dim(x, -h % multiple, -2)
    x = _pad_dim(x, -w % multiple, -1)
    return x, (h, w)


def crop_back(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size`` = (h, w)."""
    h, w = size
    if y.shape[-2] < h or y.shape[-1] < w:
        raise ValueError(f"cannot crop {tuple(y.shape[-2:])} back to the larger size {(h, w)}")
    return y[..., :h, :w]
