"""serve.stylizer over real onnxruntime sessions of the tiny test generators (tests/onnx_models.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from onnx_models import make_card, make_test_model, numpy_forward
from PIL import Image

from cyclegan.contract.images import open_image
from cyclegan.contract.sizes import fit_size
from serve.stylizer import ModelLoadError, Stylizer


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "permute": make_test_model(root / "cartoon.onnx", kind="permute"),
        "conv": make_test_model(root / "conv.onnx", kind="conv", seed=3),
        "unet": make_test_model(root / "unet.onnx", kind="permute", generator="unet_128", size_multiple=16),
    }


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def rng_image(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def odd_inputs() -> dict[str, bytes]:
    """One encoded file per awkward mode/size; all 3:5-ish so the output size is easy to check."""
    base = rng_image(30, 18)
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    sixteen = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    return {
        "L": encode(base.convert("L")),
        "LA": encode(base.convert("LA")),
        "RGBA": encode(base.convert("RGBA")),
        "P": encode(pal),
        "P+transparency": encode(pal, transparency=3),
        "CMYK": encode(base.convert("CMYK"), "JPEG", quality=95),
        "I;16": encode(sixteen),
        "1": encode(base.convert("1")),
        "exif-rotated": encode(base, "JPEG", exif=exif, quality=95),
        "1x1": encode(rng_image(1, 1)),
        "3x5": encode(rng_image(3, 5)),
        "1001x333": encode(rng_image(1001, 333)),
    }


@pytest.mark.parametrize("case", sorted(odd_inputs()))
def test_every_odd_mode_and_size_keeps_the_size(models: dict[str, Path], case: str) -> None:
    data = odd_inputs()[case]
    image = open_image(data)
    assert image.mode == "RGB"
    stylizer = Stylizer(models["permute"], threads=1)
    out = stylizer.stylize(image)
    assert out.mode == "RGB" and out.size == image.size
    if case == "exif-rotated":
        assert out.size == (18, 30)
    # The permute model rotates the channels: exact up to rounding for every mode.
    want = np.roll(np.asarray(image, dtype=np.int16), -1, axis=2)
    assert np.abs(np.asarray(out, dtype=np.int16) - want).max() <= 1


def test_max_side_resizes_keeping_aspect(models: dict[str, Path]) -> None:
    image = rng_image(1001, 333)
    stylizer = Stylizer(models["permute"], threads=1, max_side=100)
    assert stylizer.stylize(image).size == fit_size(1001, 333, 100) == (100, 33)
    assert stylizer.stylize(image, max_side=0).size == (1001, 333)  # 0: keep the size
    assert stylizer.stylize(rng_image(40, 60), max_side=500).size == (40, 60)  # never upscaled
    # Default from the card when neither the constructor nor the call says.
    carded = make_test_model(models["permute"].with_name("carded.onnx"), max_side=64)
    assert Stylizer(carded).stylize(image).size == (64, 21)


def reference(image: Image.Image, max_side: int, multiple: int, seed: int) -> np.ndarray:
    """The documented pipeline in plain numpy: resize, normalise, reflect-pad (split), conv, crop, denormalise."""
    w, h = image.size
    scale = max_side / max(w, h)
    image = image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    x = (np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0 - 0.5) / 0.5
    h, w = x.shape[2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    padded = np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), mode="reflect")
    y = numpy_forward(padded, kind="conv", seed=seed)[:, :, ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
    return np.clip(np.rint((y * 0.5 + 0.5) * 255.0), 0, 255).astype(np.uint8)[0].transpose(1, 2, 0)


def test_conv_model_matches_numpy_reference(models: dict[str, Path]) -> None:
    image = rng_image(53, 37, seed=5)
    out = Stylizer(models["conv"], threads=1).stylize(image, max_side=45)
    want = reference(image, 45, 4, seed=3)
    assert out.size == (45, 31)
    diff = np.abs(np.asarray(out, dtype=np.int16) - want.astype(np.int16))
    assert diff.max() <= 1 and diff.mean() < 0.05


def test_batch_equals_single_and_keeps_order(models: dict[str, Path]) -> None:
    stylizer = Stylizer(models["conv"], threads=1)
    images = [rng_image(20, 12, 1), rng_image(9, 31, 2), rng_image(20, 12, 3), rng_image(20, 12, 4)]
    batch = stylizer.stylize_batch(images, batch_size=2)
    assert [b.size for b in batch] == [i.size for i in images]
    for image, got in zip(images, batch):
        assert np.array_equal(np.asarray(got), np.asarray(stylizer.stylize(image)))


def test_large_multiple_generators_and_tiny_images(models: dict[str, Path]) -> None:
    stylizer = Stylizer(models["unet"], threads=1)  # a unet_128-like multiple of 16
    for size in [(1, 1), (2, 17), (33, 3)]:
        assert stylizer.stylize(rng_image(*size)).size == size


def test_card_name_and_threads(models: dict[str, Path]) -> None:
    stylizer = Stylizer(models["permute"], threads=1)
    assert stylizer.name == "cartoon"
    assert stylizer.card.title == "photo -> cartoon" and stylizer.title == "cartoon (photo -> cartoon)"
    assert stylizer.card.size_multiple == 4
    assert stylizer.session.get_session_options().intra_op_num_threads == 1
    with pytest.raises(ValueError, match="threads"):
        Stylizer(models["permute"], threads=0)


def test_model_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        Stylizer(tmp_path / "missing.onnx")
    with pytest.raises(ModelLoadError, match="folder"):
        Stylizer(tmp_path)
    (tmp_path / "text.onnx").write_text("this is not a protobuf")
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        Stylizer(tmp_path / "text.onnx")
    with pytest.raises(ModelLoadError, match="one 4-D input named 'input'.*found x"):
        Stylizer(make_test_model(tmp_path / "foreign.onnx", input_name="x"))
    with pytest.raises(ModelLoadError, match="output named 'output'"):
        Stylizer(make_test_model(tmp_path / "foreign_out.onnx", output_name="y"))
    with pytest.raises(ModelLoadError, match="no 'cyclegan' metadata"):
        Stylizer(make_test_model(tmp_path / "bare.onnx", with_metadata=False))
    bad = make_card()
    bad.format = "someone-else/v1"
    with pytest.raises(ModelLoadError, match="unknown model card format"):
        Stylizer(make_test_model(tmp_path / "alien.onnx", card=bad))
