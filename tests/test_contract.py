"""cyclegan.contract: the conventions every stage shares, checked once here."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclegan.contract import pixels, sizes
from cyclegan.contract.card import GENERATOR_KINDS, CardError, GeneratorCard
from cyclegan.contract.errors import ToolkitError


def test_contract_imports_no_torch_in_a_real_process() -> None:
    modules = ("card", "errors", "files", "images", "layout", "pixels", "runtime", "sizes", "tiles", "typed", "video")
    code = (
        "import sys, " + ", ".join(f"cyclegan.contract.{m}" for m in modules) + "; "
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'av', 'yaml') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_pixel_round_trip_is_exact_for_every_value() -> None:
    values = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    x = pixels.to_model(values)
    assert x.dtype == np.float32 and x.shape == (1, 3, 16, 16)
    assert x.min() == -1.0 and x.max() == 1.0
    assert np.array_equal(pixels.from_model(x), values)


def test_pixels_match_the_torch_twin() -> None:
    torch = pytest.importorskip("torch")
    from PIL import Image

    from cyclegan.models.pixels import image_to_model, model_to_unit

    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    ours = pixels.to_model(rgb[None])[0]
    twin = image_to_model(Image.fromarray(rgb)).numpy()
    assert np.array_equal(ours, twin)
    assert torch.allclose(model_to_unit(torch.from_numpy(ours)), torch.from_numpy(rgb).permute(2, 0, 1) / 255.0)


@pytest.mark.parametrize("kind", GENERATOR_KINDS)
def test_every_generator_kind_has_size_rules(kind: str) -> None:
    multiple, least = sizes.size_multiple(kind), sizes.min_side(kind)
    assert multiple >= 4 and least >= multiple
    card = GeneratorCard(kind)
    assert (card.size_multiple, card.min_side) == (multiple, least)


@given(size=st.integers(1, 2000), multiple=st.sampled_from([4, 16, 128, 256]), minimum=st.integers(1, 300))
def test_padding_reaches_the_smallest_allowed_size(size: int, multiple: int, minimum: int) -> None:
    before, after = sizes.centred_padding(size, multiple, minimum)
    padded = size + before + after
    assert padded % multiple == 0 and padded >= max(size, minimum)
    assert padded - multiple < max(size, minimum)  # the smallest such size
    assert 0 <= after - before <= 1


def test_old_cards_without_new_fields_still_load() -> None:
    old = json.loads(GeneratorCard("resnet_9blocks").to_json())
    for field in ("min_side", "upsample"):
        old.pop(field)
    card = GeneratorCard.from_json(json.dumps(old))
    assert card.min_side == 8 and card.upsample == "deconv"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"size_multiple": 0}, "size_multiple must be >= 1"),
        ({"size_multiple": "4"}, "size_multiple: expected an integer"),
        ({"ngf": "16"}, "ngf: expected an integer"),
        ({"direction": "X2Y"}, "direction: expected one of"),
        ({"std": [0.5, 0, 0.5]}, "std must be finite and > 0"),
        ({"mean": [0.5, float("nan"), 0.5]}, "finite number"),
        ({"generator": "resnet_3blocks"}, "generator: expected one of"),
        ({"max_side": 0}, "max_side must be >= 1"),
        ({"skip_change": "hue"}, "skip_change: expected one of"),
        ({"skip_change": "luminance"}, "skip_change=luminance needs global_skip"),
        ({"skip_levels": 8}, "skip_levels needs global_skip"),
        ({"global_skip": True, "skip_levels": 1}, "skip_levels must be 0 or from 2 to 64"),
        ({"global_skip": True, "skip_levels": 100}, "skip_levels must be 0 or from 2 to 64"),
        ({"skip_levels": "8"}, "skip_levels: expected an integer"),
        ({"outlines": 1.0}, "outlines needs global_skip"),
        ({"global_skip": True, "outlines": -0.5}, "outlines must be from 0 to 4"),
        ({"global_skip": True, "outlines": float("nan")}, "outlines: expected a finite number"),
        ({"global_skip": True, "outlines": True}, "outlines"),
        ({"input_nc": 4}, "only 1 or 3 channels"),
        ({"format": "other/1"}, "unknown model card format"),
    ],
)
def test_bad_cards_are_refused_with_the_field_named(change: dict, message: str) -> None:
    data = {**json.loads(GeneratorCard("resnet_6blocks").to_json()), **change}
    with pytest.raises(CardError, match=message) as info:
        GeneratorCard.from_json(json.dumps(data), where="m.onnx")
    assert "m.onnx" in str(info.value) and isinstance(info.value, ToolkitError)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["generator", "ngf", "size_multiple", "min_side", "std", "mean", "direction", "extra", "x"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-5, 300),
            st.floats(),
            st.text(max_size=8),
            st.lists(st.floats(), max_size=4),
        ),  # fmt: skip
    )
)
def test_any_card_json_loads_or_raises_card_error(overrides: dict) -> None:
    data = {**json.loads(GeneratorCard("resnet_6blocks").to_json()), **overrides}
    try:
        card = GeneratorCard.from_json(json.dumps(data))
    except CardError:
        return
    assert card.size_multiple >= 1 and card.min_side >= 1 and all(s > 0 for s in card.std)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 300),
    st.integers(1, 300),
    st.sampled_from([(4, 8), (4, 1), (128, 128), (256, 256)]),
)
def test_padded_index_cuts_what_pad_centred_pads(h: int, w: int, rule: tuple[int, int]) -> None:
    """Tiles cut windows through padded_index instead of padding the whole picture: the same pixels."""
    x = np.random.default_rng(h * 1000 + w).integers(0, 256, (2, h, w), dtype=np.uint8)
    padded, (top, left) = sizes.pad_centred(x, *rule)
    rows, top_index = sizes.padded_index(h, *rule)
    cols, left_index = sizes.padded_index(w, *rule)
    assert (top_index, left_index) == (top, left)
    assert np.array_equal(x[:, rows][:, :, cols], padded)
