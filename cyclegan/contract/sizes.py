"""Which image sizes a generator accepts, and the one way to reach them (round up, pad centred, crop back).

* ResNet generators downsample twice: sides must be multiples of 4, and at least 8 (the residual blocks
  reflect-pad the 1/4-scale map by 1, which needs 2 pixels there).
* U-Nets downsample ``num_downs`` times: multiples of 2**num_downs (128 for unet_128, 256 for unet_256).

Serving pads an image up to the next allowed size, centred (reflect where the side is long enough, else edge),
runs the network and crops the middle back out. Training never pads: its crops are chosen legal up front.
"""

from __future__ import annotations

import numpy as np

from cyclegan.contract.errors import ToolkitError

RESNET_RULE = (4, 8)  # (size multiple, minimum side) of every ResNet generator


def unet_rule(num_downs: int) -> tuple[int, int]:
    """(size multiple, minimum side) of a U-Net with ``num_downs`` stride-2 levels."""
    return 2**num_downs, 2**num_downs


# Keyed by the generator kinds of cyclegan.contract.card.GeneratorKind (which checks that they agree).
_RULES = {
    "resnet_9blocks": RESNET_RULE,
    "resnet_6blocks": RESNET_RULE,
    "unet_128": unet_rule(7),
    "unet_256": unet_rule(8),
}


class InputSizeError(ToolkitError, ValueError):
    """An image's height or width is not a size the generator can process."""


def size_multiple(generator: str) -> int:
    """Height and width must be multiples of this."""
    return _rule(generator)[0]


def min_side(generator: str) -> int:
    """The smallest height and width the generator runs on."""
    return _rule(generator)[1]


def _rule(generator: str) -> tuple[int, int]:
    try:
        return _RULES[generator]
    except KeyError:
        raise InputSizeError(
            f"unknown generator {generator!r}: expected one of {', '.join(map(repr, _RULES))}"
        ) from None


def round_up(size: int, multiple: int, minimum: int = 1) -> int:
    """The smallest multiple of ``multiple`` that is >= max(size, minimum)."""
    size = max(size, minimum)
    return -(-size // multiple) * multiple


def centred_padding(size: int, multiple: int, minimum: int = 1) -> tuple[int, int]:
    """(before, after) pixels that pad ``size`` to :func:`round_up` of it; the extra pixel, if any, goes after."""
    total = round_up(size, multiple, minimum) - size
    return total // 2, total - total // 2


def check_size(name: str, multiple: int, height: int, width: int, least: int = 0) -> None:
    """Raise :class:`InputSizeError` unless both sides are multiples of ``multiple`` and at least ``least``."""
    low = max(multiple, least)
    if height < low or width < low or height % multiple or width % multiple:
        at_least = f" and at least {low}" if low > multiple else ""
        raise InputSizeError(
            f"{name} needs height and width that are multiples of {multiple}{at_least}, got {height}x{width} (HxW); "
            f"pad or resize to e.g. {round_up(height, multiple, low)}x{round_up(width, multiple, low)}"
        )


def check_input_size(generator: str, height: int, width: int) -> None:
    """:func:`check_size` with the generator's own multiple and minimum side."""
    check_size(generator, size_multiple(generator), height, width, min_side(generator))


def fit_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down so the longer side is at most ``max_side``, aspect kept; never upscaled."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def padded_index(size: int, multiple: int, minimum: int = 1) -> tuple[np.ndarray, int]:
    """For each position along an axis padded like :func:`pad_centred` pads it, the source position; and the
    padding before. ``x[..., padded_index(h)[0], :]`` equals ``pad_centred``'s rows, so a window of a padded
    picture can be cut without padding the whole picture (large photos)."""
    before, after = centred_padding(size, multiple, minimum)
    index = np.arange(-before, size + after)
    if max(before, after) < size:  # reflect, the edge itself not repeated (numpy's "reflect")
        index = np.abs(index)
        index = np.where(index >= size, 2 * (size - 1) - index, index)
    else:  # edge
        index = np.clip(index, 0, size - 1)
    return index, before


def pad_centred(x: np.ndarray, multiple: int, minimum: int = 1) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the H and W axes of ``x`` (``[..., H, W]``) up to allowed sizes, centred; returns (padded, (top, left)).

    Reflect padding where the side is long enough (natural statistics for the norm layers), else edge.
    Crop the network's output back with ``y[..., top:top + h, left:left + w]``.
    """
    offsets = []
    for axis in (-2, -1):
        before, after = centred_padding(x.shape[axis], multiple, minimum)
        if before or after:
            widths = [(0, 0)] * x.ndim
            widths[axis] = (before, after)
            x = np.pad(x, widths, mode="reflect" if max(before, after) < x.shape[axis] else "edge")
        offsets.append(before)
    return x, (offsets[0], offsets[1])
