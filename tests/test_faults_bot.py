"""Bad input and faults for the Telegram bot (issue 13: items 10 and 11, the unclear ones, and relatives).

The real PTB Application against the fake Bot API over HTTP (tests/fake_bot_api.py), real processes for the
start-up refusals and the healthcheck.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from fake_bot_api import FakeBotApi
from test_bot import TOKEN, models, noise_image, only_reply, running_bot, settings_for  # noqa: F401 - fixture

from serve.bot import healthcheck
from serve.bot_config import BotSettings, SettingsError
from serve.bot_worker import RateLimiter

ROOT = Path(__file__).resolve().parents[1]


def env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    return {"BOT_TOKEN": TOKEN, "BOT_MODELS_DIR": str(tmp_path), **overrides}


# --- item 10: an allowlist that is set but names nobody refuses to start ---------------------------------------------
@pytest.mark.parametrize("value", [",", " , ,", "", "   ", ",,\t,"])
def test_a_set_but_empty_allowlist_refuses_to_start(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="BOT_ALLOWED_USERS=.* is set but lists no user id"):
        BotSettings.from_env(env(tmp_path, BOT_ALLOWED_USERS=value))
    assert BotSettings.from_env(env(tmp_path)).is_allowed(12345)  # unset: everyone, as documented


@pytest.mark.parametrize("value", ["１２３", "12,-5", "1;2", "0x10", "²"])
def test_an_allowlist_of_non_ids_refuses_to_start(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="is not a comma-separated list of numeric user ids"):
        BotSettings.from_env(env(tmp_path, BOT_ALLOWED_USERS=value))


def test_the_bot_process_refuses_an_empty_allowlist(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "serve", "bot"],
        env={**os.environ, **env(tmp_path, BOT_ALLOWED_USERS=" , ,")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 2, process.stderr
    assert "lists no user id" in process.stderr and "Traceback" not in process.stderr


# --- relatives: other environment values that used to pass or crash ---------------------------------------------------
@pytest.mark.parametrize(
    "name, value, words",
    [
        ("BOT_HEARTBEAT_SECONDS", "nan", "BOT_HEARTBEAT_SECONDS=nan must be between 0 and 3600"),
        ("BOT_HEARTBEAT_SECONDS", "inf", "BOT_HEARTBEAT_SECONDS=inf must be between 0 and 3600"),
        ("BOT_POLL_TIMEOUT", "nan", "BOT_POLL_TIMEOUT=nan must be between 0 and 300"),
        ("BOT_MAX_SIDE", "1e3", "BOT_MAX_SIDE='1e3' is not an integer"),
        ("BOT_WORKERS", "-1", "BOT_WORKERS=-1 must be at least 1"),
        ("BOT_WORKERS", "100000", "BOT_WORKERS=100000 must be at most 256"),
        ("BOT_MAX_PIXELS", "50000000000", "BOT_MAX_PIXELS=50000000000 must be at most 500000000"),
        ("BOT_MAX_INPUT_BYTES", "1e6", "BOT_MAX_INPUT_BYTES='1e6' is not an integer"),
    ],
)
def test_bad_numbers_in_the_environment_are_listed(tmp_path: Path, name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError, match="invalid bot settings") as info:
        BotSettings.from_env(env(tmp_path, **{name: value}))
    assert words in str(info.value)


def test_a_token_file_that_is_not_text_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "token").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(SettingsError, match="is not a text file"):
        BotSettings.from_env({"BOT_TOKEN_FILE": str(tmp_path / "token"), "BOT_MODELS_DIR": str(tmp_path)})


# --- item 11: the rate limiter forgets idle users ------------------------------------------------------------------
def test_rate_limiter_memory_follows_active_users_not_everyone_ever_seen() -> None:
    """200,000 one-off users over an hour, then an hour idle: memory stays bounded and idle users are gone."""
    now = [0.0]
    limiter = RateLimiter(10, 60.0, clock=lambda: now[0])
    tracemalloc.start()
    try:
        for user in range(200_000):
            now[0] = user * 0.018  # one new user every 18 ms for an hour
            assert limiter.retry_after(user) == 0.0
            limiter.record(user)
        _, peak = tracemalloc.get_traced_memory()
        print(f"rate limiter: peak {peak / 1e6:.1f} MB while 200,000 one-off users came over an hour")
        assert peak < 8e6  # about 3,300 users are inside any 60 s window; keeping all 200,000 took ~170 MB
        now[0] += 3600  # an hour without anyone
        limiter.sweep()  # what the bot's periodic task does
        idle = len(limiter._events)
        limiter.record("after")
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert idle == 0 and len(limiter._events) == 1
    assert current < 1e6


def test_rate_limiter_still_limits_after_sweeps() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 60.0, clock=lambda: now[0])
    for _ in range(2):
        limiter.record("u")
    now[0] = 59.0
    limiter.sweep()
    assert limiter.retry_after("u") == pytest.approx(1.0)  # both events are still inside the window
    now[0] = 61.0
    limiter.sweep()
    assert limiter.retry_after("u") == 0.0 and len(limiter) == 0


# --- item 11: Telegram's flood control (429 RetryAfter) is waited out, not turned into "something went wrong" -------
def test_a_429_retry_after_is_waited_out_and_the_image_still_sent(models: Path) -> None:  # noqa: F811
    with FakeBotApi(TOKEN) as api:
        settings = settings_for(api, models)
        with running_bot(settings):
            api.fail_next("sendDocument", code=429, description="Too Many Requests: retry after 1", retry_after=1)
            started = time.monotonic()
            api.push_updates(api.document_message(90, noise_image(32, 32), file_name="a.png", mime_type="image/png"))
            reply = only_reply(api, 90)
            waited = time.monotonic() - started
    sends = [c for c in api.calls if c.method == "sendDocument"]
    assert [c.status for c in sends] == [429, 200], [c.status for c in sends]
    assert reply.method == "sendDocument" and waited >= 1.0


# --- unclear: a document over the download limit without a declared size --------------------------------------------
def test_a_21_mib_document_without_declared_size_is_answered_too_large(models: Path) -> None:  # noqa: F811
    with FakeBotApi(TOKEN) as api:
        settings = settings_for(api, models, max_input_bytes=20 * 1024 * 1024)
        update = api.document_message(91, b"\x89PNG" + bytes(21 * 1024 * 1024), file_name="big.png", mime_type=None)
        del update["message"]["document"]["file_size"]  # clients do not always declare it
        with running_bot(settings):
            api.push_updates(update)
            reply = only_reply(api, 91)
    assert reply.method == "sendMessage"
    assert "larger than 20.0 MB" in reply.params["text"] and "went wrong" not in reply.params["text"]
    assert api.file_downloads() == []


def test_an_oversized_download_from_a_server_that_hides_sizes_is_refused(models: Path) -> None:  # noqa: F811
    with FakeBotApi(TOKEN) as api:
        api.hide_file_sizes = True
        settings = settings_for(api, models, max_input_bytes=50_000)
        update = api.document_message(92, noise_image(200, 200), file_name="x.png", mime_type="image/png")
        del update["message"]["document"]["file_size"]
        with running_bot(settings):
            api.push_updates(update)
            reply = only_reply(api, 92)
    assert reply.method == "sendMessage" and "larger than" in reply.params["text"], reply.params


# --- unclear/relatives: names of documents in any script keep a readable stem ---------------------------------------
def test_document_names_keep_a_readable_safe_stem(models: Path) -> None:  # noqa: F811
    with FakeBotApi(TOKEN) as api:
        settings = settings_for(api, models)
        png = noise_image(32, 32)
        with running_bot(settings):
            api.push_updates(
                api.document_message(93, png, file_name="фото с пробелом.png", mime_type="image/png"),
                api.document_message(94, png, file_name="..\u202egnp.exe.png", mime_type="image/png"),
            )
            first, second = only_reply(api, 93), only_reply(api, 94)
    assert first.upload("document").filename == "фото_с_пробелом-a_cartoon.png"
    assert second.upload("document").filename == "gnp_exe-a_cartoon.png"


# --- unclear: the healthcheck trusts only a finite heartbeat from the past ----------------------------------------
@pytest.mark.parametrize(
    "beat, period, words",
    [
        ({"time": float("nan")}, "15", "not a finite number"),
        ({"time": float("inf")}, "15", "not a finite number"),
        ({"time": "1700000000"}, "15", "not a finite number"),
        ({"time": True}, "15", "not a finite number"),
        ({"time": "future"}, "15", "not a finite number"),
        ({"time": 3600.0}, "15", "in the future"),  # relative to now, see below
        ({"time": 0.0}, "nan", "is not a period"),
        ({"time": 0.0}, "-1", "is not a period"),
        ({"time": 0.0}, "0", "is not a period"),
        ([1, 2], "15", "unreadable heartbeat"),
    ],
)
def test_the_healthcheck_refuses_heartbeats_it_cannot_trust(tmp_path: Path, beat, period: str, words: str) -> None:
    path = tmp_path / "hb"
    if isinstance(beat, dict) and isinstance(beat.get("time"), float) and beat["time"] in (3600.0, 0.0):
        beat = {**beat, "time": time.time() + beat["time"]}
    path.write_text(json.dumps(beat))  # json writes NaN/Infinity, as Python's json.dumps of a float does
    healthy, why = healthcheck({"BOT_HEARTBEAT_FILE": str(path), "BOT_HEARTBEAT_SECONDS": period})
    assert not healthy and words in why, why
    path.write_text(json.dumps({"time": time.time(), "styles": 2, "admitted": 0}))
    assert healthcheck({"BOT_HEARTBEAT_FILE": str(path), "BOT_HEARTBEAT_SECONDS": "15"})[0]


def test_the_healthcheck_process_fails_on_a_nan_heartbeat(tmp_path: Path) -> None:
    (tmp_path / "hb").write_text('{"time": NaN}')
    process = subprocess.run(
        [sys.executable, "-m", "serve", "bot", "--healthcheck"],
        env={**os.environ, "BOT_HEARTBEAT_FILE": str(tmp_path / "hb")},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 1 and "not a finite number" in process.stdout, process.stdout + process.stderr
