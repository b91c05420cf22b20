"""Open any still image as upright 8-bit RGB (shared by the importer and the torch dataset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Every error Pillow raises for a file it cannot decode (truncated, not an image, bomb, bad EXIF).
IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB.

    Transparent pixels are composited over ``background`` (white) instead of being dropped to
    whatever colour they hide; 16/32-bit integer and float images are scaled to 0..255 rather
    than clipped, which is what a plain ``convert("RGB")`` would do.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth gray array to uint8 (16-bit ranges by 257, floats in [0, 1] by 255)."""
    values = values.astype(np.float64)
    if values.size and values.max() > 255:
        values = values / 257.0  # 16-bit range (0..65535) -> 0..255
    elif values.size and values.max() <= 1.0 and values.dtype.kind == "f":
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def open_rgb(path: str | Path) -> Image.Image:
    """Decode ``path`` fully, apply its EXIF orientation and return RGB; raises one of IMAGE_ERRORS."""
    with Image.open(path) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
        return to_rgb(upright if upright is not None else image).copy()
