"""Property-based tests (Hypothesis): whole families of bad input, not single cases (issue 13).

Each property is the contract of an edge where outside data enters: it returns a valid value or raises the
stage's one error class (a :class:`ToolkitError`), and nothing else -- no other exception, no NaN, no partial
state. Config overrides and files, generator cards, images, videos, the dataset manifest, file-name stems and the
bot's environment.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from cyclegan.config import Config, ConfigError, load_config
from cyclegan.contract.card import CardError, GeneratorCard
from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.files import STEM_BYTES, safe_stem
from cyclegan.contract.images import ImageInputError, open_image
from cyclegan.contract.layout import DatasetError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _dotted_keys() -> list[str]:
    keys = ["name"]
    for section in dataclasses.fields(Config):
        if section.name != "name":
            keys += [f"{section.name}.{f.name}" for f in dataclasses.fields(section.default_factory())]  # type: ignore[misc]
    return keys


KEYS = _dotted_keys()
# What people type after `=`: YAML scalars of every kind, the special floats, containers, junk.
RAW_VALUES = st.one_of(
    st.sampled_from(
        [".inf", "-.inf", ".nan", ".NaN", "1e999", "-1e999", "nan", "inf", "null", "~", "", "[]", "{}", "[1, 2]",
         "{a: 1}", "yes", "no", "on", "off", "true", "0x10", "0o7", "1_000", "1e-3", "1.0", "-0", "'1'", '"x"',
         "&a [*a]", "!!python/object:os.system x", "a: b: c", "- - -", "\t", "resnet_9blocks", "instance", "A2B"]
    ),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)  # fmt: skip


def _all_numbers_finite(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_numbers_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_all_numbers_finite(v) for v in value)
    return True


def _check_config(cfg: Config) -> None:
    assert _all_numbers_finite(cfg.to_dict())
    cfg.validate()  # what loaded is valid as a whole
    again = load_config(None, [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in _flat(cfg.to_dict()).items()])
    assert again.to_dict() == cfg.to_dict()  # and survives its own round trip through overrides


def _flat(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


# --- config: overrides and files --------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(KEYS), RAW_VALUES), max_size=4))
@example([("optim.lr", ".inf")])
@example([("optim.lr", ".nan")])
@example([("train.mixed_precision", "no")])
def test_any_override_loads_a_valid_config_or_raises_config_error(overrides: list[tuple[str, str]]) -> None:
    try:
        cfg = load_config(None, [f"{key}={value}" for key, value in overrides])
    except ConfigError:
        return
    _check_config(cfg)


@SETTINGS
@given(st.lists(st.text(max_size=30), max_size=3))
def test_any_override_string_loads_or_raises_config_error(overrides: list[str]) -> None:
    try:
        cfg = load_config(None, overrides)
    except ConfigError:
        return
    _check_config(cfg)


YAML_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.sampled_from(["model", "ngf", "lr", "x", "1"]), children)
    ),
    max_leaves=8,
)


@SETTINGS
@given(
    st.one_of(
        st.dictionaries(
            st.sampled_from(["name", "model", "data", "loss", "optim", "train", "extra"]),
            st.one_of(YAML_VALUES, st.dictionaries(st.sampled_from([k.split(".")[-1] for k in KEYS]), YAML_VALUES)),
        ),
        YAML_VALUES,
    )
)
def test_any_yaml_preset_loads_a_valid_config_or_raises_config_error(document: object) -> None:
    import yaml

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "preset.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        try:
            cfg = load_config(path)
        except ConfigError:
            return
    _check_config(cfg)


@SETTINGS
@given(st.binary(max_size=200))
@example(b"\x80")  # found by this test: a preset that is not UTF-8 raised UnicodeDecodeError
def test_any_preset_bytes_load_or_raise_config_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "preset.yaml"
        path.write_bytes(data)
        try:
            load_config(path)
        except ConfigError:
            pass


# --- generator cards ---------------------------------------------------------------------------------------------
CARD_FIELDS = [f.name for f in dataclasses.fields(GeneratorCard)]
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(), st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children)),
    max_leaves=6,
)


@SETTINGS
@given(st.dictionaries(st.sampled_from(CARD_FIELDS), JSON_VALUES, max_size=5))
def test_any_card_field_values_load_a_usable_card_or_raise_card_error(changes: dict) -> None:
    data = {**json.loads(GeneratorCard("unet_128").to_json()), **changes}
    try:
        card = GeneratorCard.from_json(json.dumps(data), where="m.onnx")
    except CardError as exc:
        assert "m.onnx" in str(exc)
        return
    assert 1 <= card.size_multiple <= 2048 and 1 <= card.min_side <= 2048
    assert all(math.isfinite(v) for v in (*card.mean, *card.std)) and min(card.std) > 0
    assert card.input_nc in (1, 3) and card.output_nc in (1, 3) and card.ngf >= 1
    assert GeneratorCard.from_json(card.to_json()) == card  # what loads, saves and loads again


@SETTINGS
@given(st.one_of(st.text(max_size=60), JSON_VALUES.map(json.dumps)))
def test_any_card_text_loads_or_raises_card_error(text: str) -> None:
    try:
        GeneratorCard.from_json(text)
    except CardError:
        pass


# --- images -------------------------------------------------------------------------------------------------------
def _encoded(fmt: str, mode: str, size: tuple[int, int], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


VALID_IMAGES = st.builds(
    _encoded,
    st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA"]),
    st.sampled_from(["RGB", "L"]),
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.integers(0, 1000),
)


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(VALID_IMAGES))
    how = draw(st.sampled_from(["cut", "flip", "splice", "header"]))
    if how == "cut":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "splice":
        start = draw(st.integers(0, len(data)))
        return bytes(data[:start] + draw(st.binary(max_size=64)) + data[start:])
    # the first bytes (signature + header, where the size is declared) rewritten
    end = min(len(data), 32)
    return bytes(draw(st.binary(min_size=end, max_size=end)) + data[end:])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(damaged_images(), st.binary(max_size=300), VALID_IMAGES))
def test_any_bytes_open_as_an_rgb_image_within_the_limit_or_raise_image_input_error(data: bytes) -> None:
    limit = 100_000
    try:
        image = open_image(data, max_pixels=limit)
    except ImageInputError as exc:
        assert str(exc) and isinstance(exc, ToolkitError)
        return
    assert image.mode == "RGB" and image.width * image.height <= limit
    assert np.asarray(image).shape == (image.height, image.width, 3)


# --- videos -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    from media import texture, write_h264

    folder = tmp_path_factory.mktemp("clips")
    frames = [texture(32, 48, 10 + i // 5) for i in range(15)]
    return {suffix: write_h264(folder / f"c{suffix}", frames, fps=5, gop=5).read_bytes() for suffix in (".mp4", ".mkv")}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_damaged_video_samples_frames_or_raises_video_error(clip_bytes: dict[str, bytes], data) -> None:
    from cyclegan.frames.video import Sampling, VideoError, VideoReader

    suffix = data.draw(st.sampled_from(sorted(clip_bytes)))
    blob = bytearray(clip_bytes[suffix])
    how = data.draw(st.sampled_from(["cut", "flip", "random", "intact"]))
    if how == "cut":
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 16))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    elif how == "random":
        blob = bytearray(data.draw(st.binary(max_size=400)))
    sampling = data.draw(
        st.sampled_from([Sampling(every_seconds=0.5), Sampling(count=3), Sampling(every_frames=4, start=0.5)])
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"v{suffix}"
        path.write_bytes(bytes(blob))
        try:
            with VideoReader(path) as reader:
                samples = list(reader.sample(sampling))
        except VideoError as exc:
            assert str(path) in str(exc)
            return
    assert all(s.image.mode == "RGB" and math.isfinite(s.time) for s in samples)
    if how == "intact":
        assert samples


# --- the dataset manifest -------------------------------------------------------------------------------------------
GOOD_RECORD = json.dumps(
    {"kind": "frame", "domain": "A", "source_id": "abc", "stem": "p", "status": "kept", "file": "trainA/p.jpg"},
    sort_keys=True,
)
MANIFEST_LINES = st.one_of(
    st.just(GOOD_RECORD),
    st.integers(1, len(GOOD_RECORD) - 1).map(lambda n: GOOD_RECORD[:n]),  # cut by a crash
    JSON_VALUES.map(json.dumps),
    st.text(max_size=20).filter(lambda t: "\n" not in t and "\r" not in t),
)


@SETTINGS
@given(st.lists(MANIFEST_LINES, max_size=5), st.booleans())
def test_any_manifest_opens_with_whole_records_or_raises_dataset_error(lines: list[str], newline: bool) -> None:
    from cyclegan.frames.store import DatasetStore

    text = "\n".join(lines) + ("\n" if newline and lines else "")
    assume("\u2028" not in text and "\x85" not in text)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "manifest.jsonl").write_text(text, encoding="utf-8")
        try:
            with DatasetStore(folder) as store:
                records = store.records
                reread = (Path(folder) / "manifest.jsonl").read_text(encoding="utf-8")
        except DatasetError:
            return
    assert all(isinstance(r, dict) for r in records)
    assert not reread or reread.endswith("\n")  # repaired: never a partial last line left behind
    assert [json.loads(line) for line in reread.splitlines() if line.strip()] == records


# --- file-name stems ---------------------------------------------------------------------------------------------
@SETTINGS
@given(st.text(max_size=300))
@example("фото с пробелом")
@example("../../etc/passwd")
@example("\U0001d15e:0")  # found by this test: NFC splits it into a symbol and a combining mark
def test_any_text_gives_a_safe_readable_stem(text: str) -> None:
    stem = safe_stem(text, "fallback")
    assert stem and len(stem.encode("utf-8")) <= STEM_BYTES
    assert not stem.startswith(("-", ".", "_")) and not stem.endswith(("-", ".", "_"))
    assert all(unicodedata.category(ch)[0] in "LNM" or ch in "-_" for ch in stem)  # no spaces, dots, controls
    assert "/" not in stem and "\\" not in stem and "\x00" not in stem and ".." not in stem
    assert safe_stem(stem, "fallback") == stem  # stable


# --- the bot's environment ----------------------------------------------------------------------------------------
BOT_VARIABLES = [
    "BOT_ALLOWED_USERS", "BOT_MAX_INPUT_BYTES", "BOT_MAX_PIXELS", "BOT_MAX_SIDE", "BOT_WORKERS", "BOT_QUEUE_SIZE",
    "BOT_RATE_LIMIT", "BOT_API_BASE_URL", "BOT_LOG_LEVEL", "BOT_HEARTBEAT_SECONDS", "BOT_POLL_TIMEOUT",
]  # fmt: skip


@SETTINGS
@given(st.dictionaries(st.sampled_from(BOT_VARIABLES), st.one_of(RAW_VALUES, st.sampled_from([",", " , ,", "0"]))))
def test_any_bot_environment_gives_usable_settings_or_one_settings_error(values: dict[str, str]) -> None:
    from serve.bot_config import BotSettings, SettingsError

    token = "123456789:AAH-secret_part-0123456789abcdef"
    with tempfile.TemporaryDirectory() as folder:
        try:
            settings = BotSettings.from_env({"BOT_TOKEN": token, "BOT_MODELS_DIR": folder, **values})
        except SettingsError as exc:
            assert token not in str(exc) and "secret_part" not in str(exc)
            return
    assert settings.workers >= 1 and settings.queue_size >= settings.workers
    assert math.isfinite(settings.heartbeat_seconds) and math.isfinite(settings.poll_timeout)
    if "BOT_ALLOWED_USERS" in values:
        assert settings.allowed_users  # set, it names someone
