"""Letterbox removal, resize of the shorter side and centre/random crops (Pillow only)."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

# A row/column belongs to a black bar when its brightest pixel stays at or below this level.
BAR_LEVEL = 24
# Bars are only cropped when the picture left over keeps at least this share of each side.
MIN_CONTENT = 0.5


def letterbox_box(image: Image.Image, level: int = BAR_LEVEL) -> tuple[int, int, int, int] | None:
    """The (left, top, right, bottom) box inside black bars, or None when there are no bars.

    A bar is a run of whole rows (top/bottom) or columns (left/right) at the border whose
    brightest pixel is <= ``level``; sizes are rounded to even numbers. Frames that are dark
    almost everywhere (less than MIN_CONTENT of a side left) are left alone: they are a dark
    scene, not a letterbox, and the quality filter judges them.
    """
    gray = np.asarray(image.convert("L"))
    rows = np.flatnonzero(gray.max(axis=1) > level)
    cols = np.flatnonzero(gray.max(axis=0) > level)
    height, width = gray.shape
    if rows.size == 0 or cols.size == 0:
        return None
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    top, left = top + top % 2, left + left % 2
    bottom, right = bottom - (height - bottom) % 2, right - (width - right) % 2
    if (top, left, bottom, right) == (0, 0, height, width):
        return None
    if bottom - top < MIN_CONTENT * height or right - left < MIN_CONTENT * width:
        return None
    return left, top, right, bottom


def resize_shorter(image: Image.Image, size: int) -> Image.Image:
    """Scale so the shorter side is ``size`` (down or up), keeping the aspect ratio."""
    width, height = image.size
    scale = size / min(width, height)
    if scale == 1:
        return image
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0 if scale < 0.5 else None)


def crop(image: Image.Image, size: int, mode: str, key: str) -> Image.Image:
    """A ``size`` x ``size`` crop: ``"center"``, or ``"random"`` at a position derived from ``key``.

    The random position is a pure function of ``key`` (the output file name), so re-runs write the
    same pixels. An image smaller than ``size`` is first scaled up so its shorter side fits.
    """
    if min(image.size) < size:
        image = resize_shorter(image, size)
    width, height = image.size
    if mode == "center":
        left, top = (width - size) // 2, (height - size) // 2
    else:
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        left = int.from_bytes(digest[:4], "little") % (width - size + 1)
        top = int.from_bytes(digest[4:], "little") % (height - size + 1)
    return image.crop((left, top, left + size, top + size))
