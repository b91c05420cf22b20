"""Bot settings from the environment, and the logging that must never show the token."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from serve.bot_config import (
    REDACTED,
    BotSettings,
    KeyValueFormatter,
    SettingsError,
    TokenRedactingFilter,
    configure_logging,
    log_event,
    parse_user_ids,
)

TOKEN = "123456789:AAH-secret_part-0123456789abcdef"


def env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    return {"BOT_TOKEN": TOKEN, "BOT_MODELS_DIR": str(tmp_path), **overrides}


def test_defaults_and_parsing(tmp_path: Path) -> None:
    settings = BotSettings.from_env(
        env(
            tmp_path,
            BOT_ALLOWED_USERS="11, 22 33",
            BOT_WORKERS="1",
            BOT_QUEUE_SIZE="3",
            BOT_LOG_LEVEL="debug",
            BOT_HEARTBEAT_FILE=str(tmp_path / "hb"),
        )
    )
    assert settings.allowed_users == {11, 22, 33}
    assert (settings.workers, settings.queue_size, settings.log_level) == (1, 3, "DEBUG")
    assert settings.heartbeat_file == tmp_path / "hb"
    assert settings.max_input_bytes == 20 * 1024 * 1024 and settings.rate_limit == 10
    assert settings.api_base_url == "https://api.telegram.org/bot"
    assert settings.threads_per_worker >= 1
    assert settings.is_allowed(22) and not settings.is_allowed(44)
    assert BotSettings.from_env(env(tmp_path)).is_allowed(44)  # no allowlist: everyone


def test_token_from_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    settings = BotSettings.from_env({"BOT_TOKEN_FILE": str(token_file), "BOT_MODELS_DIR": str(tmp_path)})
    assert settings.token == TOKEN


def test_every_problem_is_listed_and_the_token_never_shown(tmp_path: Path) -> None:
    bad = env(
        tmp_path,
        BOT_TOKEN="12345:has spaces " + TOKEN,
        BOT_MODELS_DIR=str(tmp_path / "missing"),
        BOT_WORKERS="two",
        BOT_MAX_SIDE="8",
        BOT_ALLOWED_USERS="1,alice",
        BOT_API_BASE_URL="ftp://x",
        BOT_LOG_LEVEL="LOUD",
        BOT_QUEUE_SIZE="0",
    )
    with pytest.raises(SettingsError) as info:
        BotSettings.from_env(bad)
    message = str(info.value)
    for expected in (
        "token is malformed",
        "BOT_MODELS_DIR",
        "BOT_WORKERS='two' is not an integer",
        "BOT_MAX_SIDE=8",
        "BOT_ALLOWED_USERS='1,alice'",
        "BOT_API_BASE_URL",
        "BOT_LOG_LEVEL",
        "BOT_QUEUE_SIZE=0",
    ):
        assert expected in message
    assert TOKEN not in message and "secret_part" not in message
    assert "secret_part" not in repr(BotSettings.from_env(env(tmp_path)))


def test_token_sources(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no bot token"):
        BotSettings.from_env({"BOT_MODELS_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="not both"):
        BotSettings.from_env(env(tmp_path, BOT_TOKEN_FILE=str(tmp_path / "t")))
    with pytest.raises(SettingsError, match="cannot be read"):
        BotSettings.from_env({"BOT_TOKEN_FILE": str(tmp_path / "absent"), "BOT_MODELS_DIR": str(tmp_path)})


def test_queue_must_hold_the_workers(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="BOT_QUEUE_SIZE=2 must be at least BOT_WORKERS=4"):
        BotSettings(token=TOKEN, models_dir=tmp_path, workers=4, queue_size=2)


def test_parse_user_ids() -> None:
    assert parse_user_ids("1,2 ,3\n4") == {1, 2, 3, 4}
    with pytest.raises(ValueError):
        parse_user_ids("1,-2")


def _records_to(stream: io.StringIO, *secrets: str) -> logging.Logger:
    logger = logging.getLogger("test.bot.redaction")
    logger.propagate = False
    logger.handlers.clear()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TokenRedactingFilter(secrets))
    handler.setFormatter(KeyValueFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger


def test_redaction_covers_messages_args_fields_and_tracebacks() -> None:
    stream = io.StringIO()
    logger = _records_to(stream, TOKEN)
    logger.info("POST https://api.telegram.org/bot%s/getMe", TOKEN)
    logger.info("encoded https://x/file/bot%s/photos/1.jpg", TOKEN.replace(":", "%3A"))
    log_event(logger, "request", url=f"https://x/bot{TOKEN}/sendPhoto", n=3)
    try:
        raise RuntimeError(f"connect failed for https://x/bot{TOKEN}/getUpdates")
    except RuntimeError:
        logger.exception("polling failed")
    logger.info("only the secret half %s", TOKEN.split(":")[1])
    text = stream.getvalue()
    assert text.count(REDACTED) == 5  # one per record above
    assert TOKEN.split(":")[1] not in text and "secret_part" not in text


def test_key_value_lines() -> None:
    stream = io.StringIO()
    logger = _records_to(stream)
    log_event(logger, "stylized", style="photo -> cartoon", total_ms=812, empty="")
    logger.warning('plain "quoted" text')
    first, second = stream.getvalue().splitlines()
    assert "level=info logger=test.bot.redaction event=stylized" in first
    assert 'style="photo -> cartoon" total_ms=812 empty=""' in first
    assert first.startswith("ts=20") and first.split()[0].endswith("Z")
    assert second.endswith('msg="plain \\"quoted\\" text"')


def test_configure_logging_quiets_httpx_and_redacts() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    before = root.level
    handler = configure_logging("INFO", secrets=[TOKEN], stream=stream)
    try:
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
        logging.getLogger("telegram.ext.Updater").info("url https://api/bot%s/getUpdates", TOKEN)
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
    assert REDACTED in stream.getvalue() and TOKEN not in stream.getvalue()


def test_model_sources_from_the_models_folder_and_bot_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = "hf://me/styles/ink_A2B.onnx"
    only_hub = BotSettings.from_env({"BOT_TOKEN": TOKEN, "BOT_MODELS": f"{hub}, extra.onnx"})
    assert only_hub.models_dir is None and only_hub.model_sources == [hub, "extra.onnx"]
    both = BotSettings.from_env(env(tmp_path, BOT_MODELS=hub))
    assert both.model_sources == [hub]  # an empty folder (the image's /models) is skipped when BOT_MODELS names models
    (tmp_path / "cartoon.onnx").write_bytes(b"")
    assert both.model_sources == [str(tmp_path), hub]
    monkeypatch.chdir(tmp_path)  # no ./models here
    with pytest.raises(SettingsError, match="BOT_MODELS_DIR=models is not a directory"):
        BotSettings.from_env({"BOT_TOKEN": TOKEN})
    with pytest.raises(SettingsError, match="no models: set BOT_MODELS_DIR"):
        BotSettings(token=TOKEN, models_dir=None)
