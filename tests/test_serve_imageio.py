"""cyclegan.contract.images: every Pillow mode to RGB, EXIF orientation, pixel limits from the header, bad inputs."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan.contract.images import ImageInputError, open_image, save_image, to_rgb


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but that carries no pixel data at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_rgba_and_la_composite_over_white() -> None:
    rgba = Image.new("RGBA", (4, 2), (255, 0, 0, 0))
    rgba.putpixel((1, 0), (10, 20, 30, 255))
    rgba.putpixel((2, 0), (0, 0, 0, 128))
    out = open_image(encode(rgba))
    assert out.mode == "RGB" and out.size == (4, 2)
    assert out.getpixel((0, 0)) == (255, 255, 255)  # fully transparent -> white, not red
    assert out.getpixel((1, 0)) == (10, 20, 30)
    assert all(120 <= v <= 135 for v in out.getpixel((2, 0)))  # half black over white -> mid grey
    la = Image.new("LA", (3, 3), (50, 0))
    la.putpixel((0, 0), (50, 255))
    out = open_image(encode(la))
    assert out.getpixel((0, 0)) == (50, 50, 50) and out.getpixel((1, 1)) == (255, 255, 255)


def test_palette_with_transparency_and_16_bit_and_cmyk() -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    assert open_image(encode(pal)).getpixel((1, 0)) == (200, 100, 50)
    out = open_image(encode(pal, transparency=0))
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 0)) == (200, 100, 50)

    sixteen = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))
    data = encode(sixteen)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    assert [open_image(data).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]  # scaled, not clipped

    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # pure red in CMYK
    out = open_image(encode(cmyk, "JPEG", quality=95))
    r, g, b = out.getpixel((0, 0))
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied() -> None:
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = open_image(encode(stored, "JPEG", exif=exif, quality=95))
    assert out.size == (20, 40)
    top, bottom = out.getpixel((10, 5)), out.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60, top  # the stored left (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_pixel_limit_is_checked_from_the_header_without_global_changes() -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageInputError, match=r"over the limit of 1\.0 megapixels"):
        open_image(png_header_only(3000, 1000), max_pixels=1_000_000)  # no pixel data to decode
    # Beyond Pillow's own bomb threshold (2 x MAX_IMAGE_PIXELS) it is still an ImageInputError.
    with pytest.raises(ImageInputError, match="too many pixels.*the limit is 1.0 megapixels"):
        open_image(png_header_only(100_000, 100_000), max_pixels=1_000_000)
    with pytest.raises(ImageInputError, match="megapixels"):
        open_image(encode(Image.new("RGB", (200, 100))), max_pixels=19_999)
    assert open_image(encode(Image.new("RGB", (200, 100))), max_pixels=20_000).size == (200, 100)
    assert Image.MAX_IMAGE_PIXELS == before


def test_non_images_truncated_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="not an image"):
        open_image(b"hello, I am a text file")
    photo = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageInputError, match="truncated or corrupt"):
        open_image(photo[: len(photo) // 2])
    with pytest.raises(ImageInputError, match="no such file"):
        open_image(tmp_path / "missing.jpg")
    (tmp_path / "p.jpg").write_bytes(photo)
    assert open_image(tmp_path / "p.jpg").size == (64, 64)
    with (tmp_path / "p.jpg").open("rb") as fh:
        assert open_image(fh).size == (64, 64)


def test_to_rgb_modes_and_save_image(tmp_path: Path) -> None:
    for mode in ("1", "L", "I", "F", "YCbCr", "HSV", "RGB"):
        assert to_rgb(Image.new(mode, (3, 2))).mode == "RGB"
    image = Image.new("RGB", (5, 4), (1, 2, 3))
    assert Image.open(save_image(image, tmp_path / "a" / "x.png")).getpixel((0, 0)) == (1, 2, 3)
    jpg = save_image(image, tmp_path / "x.jpg", quality=80)
    assert Image.open(jpg).format == "JPEG" and not list(tmp_path.glob("*.partial"))
    with pytest.raises(ValueError, match="extension"):
        save_image(image, tmp_path / "x.unknown")
