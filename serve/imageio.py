"""Reading untrusted images safely and writing results (Pillow + numpy only).

:func:`open_image` turns bytes, a path or a file object into an upright RGB image: EXIF orientation
applied, every Pillow mode converted (transparency composited over white, 16-bit scaled, CMYK and
palettes converted). The pixel limit is checked from the header, *before* decoding, without touching
Pillow's process-wide ``Image.MAX_IMAGE_PIXELS``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageSource = bytes | bytearray | str | Path | BinaryIO

DEFAULT_MAX_PIXELS = 50_000_000
JPEG_QUALITY = 92
WHITE = (255, 255, 255)


class ImageInputError(ValueError):
    """The input is not a usable image (not an image, truncated, too many pixels); the message says why."""


def open_image(src: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``src`` into an upright RGB image, refusing more than ``max_pixels`` pixels (None: no limit)."""
    where = f" ({src})" if isinstance(src, (str, Path)) else ""
    try:
        fp: str | Path | BinaryIO = io.BytesIO(bytes(src)) if isinstance(src, (bytes, bytearray)) else src
        image = Image.open(fp)
    except FileNotFoundError:
        raise ImageInputError(f"no such file: {src}") from None
    except IsADirectoryError:
        raise ImageInputError(f"{src} is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageInputError(f"not an image, or a format Pillow cannot read{where}") from None
    except Image.DecompressionBombError as exc:
        limit = f"; the limit here is {max_pixels / 1e6:.1f} megapixels" if max_pixels else ""
        raise ImageInputError(f"image has too many pixels{where}: {exc}{limit}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(f"cannot read the image{where}: {exc}") from None

    result: Image.Image | None = None
    try:
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageInputError(
                f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the limit of "
                f"{max_pixels / 1e6:.1f} megapixels{where}: send a smaller image (or raise max_pixels)"
            )
        try:
            image.seek(0)  # first frame of animations and multi-page files
            image.load()
        except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, EOFError, struct.error, ...
            raise ImageInputError(f"the image data is truncated or corrupt{where}: {exc}") from None
        result = to_rgb(_exif_transpose(image))
        return result
    finally:
        if result is not image:  # keep the file open only while it is the returned image itself
            image.close()


def _exif_transpose(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block is ignored rather than refusing the photo."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparent pixels become white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if (mode == "P" and "transparency" in image.info) or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        # 16-bit (or 32-bit integer) grey: Pillow's convert() would clip at 255, so scale 0..65535 -> 0..255.
        grey = np.asarray(image, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        scale = 255.0 if grey.size and np.nanmax(grey) <= 1.0 else 1.0
        grey = np.nan_to_num(grey * scale)
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")
    try:
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, HSV, ...
    except ValueError as exc:
        raise ImageInputError(f"cannot convert a {mode!r} image to RGB: {exc}") from None


def fit_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down so the longer side is at most ``max_side``, aspect kept; never upscaled."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def output_format(path: str | Path) -> str:
    """Pillow format name for a file name's extension (``.jpg`` -> ``JPEG``); ValueError if unknown."""
    Image.init()
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"cannot write images with extension {suffix!r}: use .jpg, .png or .webp")
    return fmt


def save_image(image: Image.Image, path: str | Path, *, quality: int = JPEG_QUALITY) -> Path:
    """Write ``image`` atomically (temporary file, then rename) in the format its extension names."""
    path = Path(path)
    fmt = output_format(path)
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if fmt == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
        image = to_rgb(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        image.save(partial, fmt, **options)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
