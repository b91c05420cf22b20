"""Still images in and out, the same way in every stage (Pillow + numpy only).

:func:`open_image` turns bytes, a path or a file object into an upright 8-bit RGB image: EXIF orientation
applied (a broken EXIF block is ignored), every Pillow mode converted by :func:`to_rgb`, and the pixel limit
checked from the header before anything is decoded, with the toolkit's limit in the message (Pillow's own
process-wide ``MAX_IMAGE_PIXELS`` is left alone). :func:`save_image` writes atomically in the format the file
name's extension names.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.files import atomic_path, output_error
from cyclegan.contract.sizes import fit_size

ImageSource = bytes | bytearray | str | Path | BinaryIO

DEFAULT_MAX_PIXELS = 50_000_000
JPEG_QUALITY = 92
# Still-image files the toolkit picks up from folders and uploads (a file named otherwise can still be opened).
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".webp", ".gif",
        ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".tga",
    }
)  # fmt: skip
WHITE = (255, 255, 255)


class ImageInputError(ToolkitError, ValueError):
    """The input is not a usable image (not an image, truncated, too many pixels); the message says why."""


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (extension case-insensitive, hidden files and folders skipped), sorted."""
    folder = Path(folder)
    found = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(
        p
        for p in found
        if is_image_name(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts) and p.is_file()
    )


def open_image(src: ImageSource, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``src`` into an upright RGB image, refusing more than ``max_pixels`` pixels (None: no limit)."""
    where = f" ({src})" if isinstance(src, (str, Path)) else ""
    try:
        fp: str | Path | BinaryIO = io.BytesIO(bytes(src)) if isinstance(src, (bytes, bytearray)) else src
        with warnings.catch_warnings():  # the limit is checked below; damage shows as an exception, not a warning
            warnings.simplefilter("ignore")
            image = Image.open(fp)
    except FileNotFoundError:
        raise ImageInputError(f"no such file: {src}") from None
    except IsADirectoryError:
        raise ImageInputError(f"{src} is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageInputError(f"not an image, or a format Pillow cannot read{where}") from None
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" ({int(found.group(1)) / 1e6:.0f} megapixels)" if found else ""
        limit = f"the limit is {max_pixels / 1e6:.1f} megapixels" if max_pixels else "Pillow refuses it"
        raise ImageInputError(f"image has too many pixels{size}{where}: {limit}; send a smaller image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(f"cannot read the image{where}: {exc}") from None

    result: Image.Image | None = None
    try:
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageInputError(
                f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the limit of "
                f"{max_pixels / 1e6:.1f} megapixels{where}: send a smaller image (or raise the limit)"
            )
        try:
            with warnings.catch_warnings():  # Pillow warns about odd tags or truncated reads; the load decides
                warnings.simplefilter("ignore")
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
    """Convert any Pillow mode to 8-bit RGB.

    Transparent pixels are composited over white instead of showing whatever colour they hide; 16-bit images
    are scaled (0..65535 -> 0..255) and float images in [0, 1] stretched, where a plain ``convert`` would clip.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if (mode == "P" and "transparency" in image.info) or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_grey_to_uint8(np.asarray(image), mode), "L").convert("RGB")
    try:
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, ...
    except ValueError as exc:
        raise ImageInputError(f"cannot convert a {mode!r} image to RGB: {exc}") from None


def _grey_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """16/32-bit integer or float grey -> uint8: 16-bit ranges scaled by 1/257, floats in [0, 1] by 255."""
    grey = np.nan_to_num(values.astype(np.float64))
    if mode.startswith("I;16") or (mode == "I" and grey.size and grey.max() > 255):
        grey = grey / 257.0
    elif mode == "F" and grey.size and grey.max() <= 1.0:
        grey = grey * 255.0
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def fit_image(image: Image.Image, max_side: int | None) -> Image.Image:
    """``image`` shrunk (LANCZOS, aspect kept, never enlarged) so its longer side is at most ``max_side``."""
    size = fit_size(image.width, image.height, max_side)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def prepare_image(image: Image.Image, channels: int, max_side: int | None) -> Image.Image:
    """An image as a generator takes it: RGB (grey for 1-channel models), fitted to ``max_side``."""
    image = to_rgb(image)
    return fit_image(image.convert("L") if channels == 1 else image, max_side)


def output_format(path: str | Path) -> str:
    """Pillow format name for a file name's extension (``.jpg`` -> ``JPEG``); ValueError if unknown."""
    Image.init()
    suffix = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"cannot write images with extension {suffix!r}: use .jpg, .png or .webp")
    return fmt


def save_image(image: Image.Image, path: str | Path, *, quality: int = JPEG_QUALITY) -> Path:
    """Write ``image`` atomically (temporary file, then rename) in the format its extension names; a full or
    read-only disk raises :class:`~cyclegan.contract.files.OutputError` and leaves no temporary file.

    JPEGs at ``quality`` >= 90 keep full colour resolution (4:4:4); below that, 4:2:0 as usual.
    """
    path = Path(path)
    fmt = output_format(path)
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if fmt == "JPEG":
        options["subsampling"] = 0 if quality >= 90 else 2
        image = to_rgb(image) if image.mode not in ("RGB", "L", "CMYK") else image
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path.parent, exc) from None
    with atomic_path(path) as partial:
        image.save(partial, fmt, **options)
    return path
