"""The bot end to end: the real PTB Application (and a real ``python -m serve.bot`` process) talking
HTTP to the fake Bot API server on 127.0.0.1, with real ONNX models run by the real Stylizer."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fake_bot_api import ApiCall, FakeBotApi
from onnx_models import make_test_model
from PIL import Image

from cyclegan.contract.images import open_image
from serve.bot import build_application, load_stylizers, run_application, style_bot_of
from serve.bot_config import BotSettings, configure_logging
from serve.stylizer import Stylizer

TOKEN = "123456789:AAH-test_secret-0123456789abcdef"
SECRET = TOKEN.split(":", 1)[1]
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- helpers
def noise_image(width: int, height: int, *, seed: int = 0, fmt: str = "PNG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def smooth_image(width: int, height: int) -> bytes:
    """Gradients: a photo-like image that JPEG keeps well (noise would make the tolerance meaningless)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.stack([255 * x / width, 255 * y / height, 128 + 100 * np.sin((x + y) / 15)], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def expected(model: Path, data: bytes, settings: BotSettings) -> np.ndarray:
    """What the Stylizer itself makes of ``data`` (computed independently of the bot)."""
    image = open_image(data, max_pixels=settings.max_pixels)
    return np.asarray(Stylizer(model).stylize(image, max_side=settings.max_side), dtype=np.int16)


def only_reply(api: FakeBotApi, user: int, timeout: float = 20) -> ApiCall:
    replies = api.wait_for_replies(user, 1, timeout)
    assert len(replies) == 1, f"user {user} got {len(replies)} replies: {[r.method for r in replies]}"
    return replies[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    make_test_model(folder / "a_cartoon.onnx", kind="conv", seed=1, target_domain="cartoon")
    make_test_model(folder / "b_sketch.onnx", kind="conv", seed=2, target_domain="sketch")
    return folder


def settings_for(api: FakeBotApi, models_dir: Path, **overrides: object) -> BotSettings:
    base = BotSettings(
        token=TOKEN,
        models_dir=models_dir,
        api_base_url=api.base_url,
        api_file_url=api.base_file_url,
        poll_timeout=1,
        workers=2,
        queue_size=4,
        rate_limit=0,
        max_side=256,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@contextmanager
def running_bot(settings: BotSettings) -> Iterator[object]:
    """The bot's Application polling in a thread with its own event loop; stopped gracefully on exit."""
    application = build_application(settings, load_stylizers(settings))
    state: dict[str, object] = {}
    ready = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        ready.set()
        await run_application(application, stop)

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=target, name="bot-under-test", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield application
    finally:
        if "loop" in state:
            state["loop"].call_soon_threadsafe(state["stop"].set)  # type: ignore[attr-defined]
        thread.join(30)
        assert not thread.is_alive(), "the bot did not stop within 30 s"
        if "error" in state:
            raise state["error"]  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------- tests
def test_photo_and_file_round_trips_return_the_stylizer_output(models: Path) -> None:
    with FakeBotApi(TOKEN) as api:
        settings = settings_for(api, models)
        model = models / "a_cartoon.onnx"  # the first style is every chat's default
        png = noise_image(96, 72, seed=3)
        with running_bot(settings):
            # An image sent as a file: a lossless PNG file back, pixel for pixel the Stylizer's output.
            api.push_updates(api.document_message(1, png, file_name="holiday.png", mime_type="image/png"))
            reply = only_reply(api, 1)
            assert reply.method == "sendDocument"
            upload = reply.upload("document")
            assert upload.filename == "holiday-a_cartoon.png"
            got, want = decode(upload.data), expected(model, png, settings)
            assert got.shape == want.shape == (72, 96, 3)
            assert int(np.abs(got - want).max()) <= 1
            assert int(np.abs(got - decode(png)).mean()) > 10  # it really is transformed

            # A compressed photo: a photo back, the stylized version of the size the bot downloaded.
            api.push_updates(api.photo_message(2, smooth_image(120, 80)))
            reply = only_reply(api, 2)
            assert reply.method == "sendPhoto"
            downloaded = api.file_bytes(api.file_downloads()[-1])
            assert downloaded is not None
            got, want = decode(reply.upload("photo").data), expected(model, downloaded, settings)
            assert got.shape == want.shape
            assert float(np.abs(got - want).mean()) < 3  # JPEG at quality 92

            # /quality file: photos come back as lossless files.
            api.push_updates(api.text_message(3, "/quality file"))
            api.wait_for_replies(3, 1)
            api.push_updates(api.photo_message(3, png))
            reply = api.wait_for_replies(3, 2)[1]
            assert reply.method == "sendDocument"
            downloaded = api.file_bytes(api.file_downloads()[-1])
            assert int(np.abs(decode(reply.upload("document").data) - expected(model, downloaded, settings)).max()) <= 1

            # File replies keep the full resolution (BOT_FILE_MAX_SIDE=0); photos are limited to max_side.
            big = noise_image(400, 200, seed=4)
            api.push_updates(api.document_message(4, big, file_name="big.png", mime_type="image/png"))
            assert decode(only_reply(api, 4).upload("document").data).shape == (200, 400, 3)


def test_style_choice_by_inline_keyboard_is_kept_per_chat(models: Path) -> None:
    with FakeBotApi(TOKEN) as api:
        settings = settings_for(api, models)
        png = noise_image(64, 48, seed=5)
        with running_bot(settings) as application:
            title_b = style_bot_of(application).catalog.get("b_sketch").title
            api.push_updates(api.text_message(7, "/styles"))
            menu = only_reply(api, 7)
            buttons = [row[0] for row in menu.json("reply_markup")["inline_keyboard"]]
            assert [b["callback_data"] for b in buttons] == ["style:a_cartoon", "style:b_sketch"]
            assert buttons[0]["text"].startswith("✓ ")

            api.push_updates(api.callback_query(7, api.sent_message(menu), "style:b_sketch"))
            api.wait_for(lambda calls: any(c.method == "editMessageText" for c in calls))
            answers = api.calls_of("answerCallbackQuery")
            assert len(answers) == 1 and answers[0].ok
            edit = api.calls_of("editMessageText")[0]
            assert edit.ok and title_b in edit.params["text"]
            marks = [row[0]["text"] for row in edit.json("reply_markup")["inline_keyboard"]]
            assert marks[1].startswith("✓ ") and not marks[0].startswith("✓ ")

            # Chat 7 now gets the second style, chat 8 still the default.
            api.push_updates(
                api.document_message(7, png, file_name="x.png", mime_type="image/png"),
                api.document_message(8, png, file_name="x.png", mime_type="image/png"),
            )
            got7 = decode(api.wait_for_replies(7, 2)[1].upload("document").data)
            got8 = decode(only_reply(api, 8).upload("document").data)
            want_b = expected(models / "b_sketch.onnx", png, settings)
            want_a = expected(models / "a_cartoon.onnx", png, settings)
            assert int(np.abs(got7 - want_b).max()) <= 1 and int(np.abs(got8 - want_a).max()) <= 1
            assert float(np.abs(want_a - want_b).mean()) > 5  # the two styles differ

            # A button from an old menu (a style that is gone) is answered, not ignored.
            api.push_updates(api.callback_query(7, api.sent_message(menu), "style:removed"))
            api.wait_for(lambda calls: len([c for c in calls if c.method == "answerCallbackQuery"]) == 2)
            assert all(c.ok for c in api.calls_of("answerCallbackQuery"))


def _bomb_png() -> bytes:
    """A 6000x6000 PNG of one colour: a few kB on the wire, 36 megapixels decoded."""
    buffer = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def test_every_bad_input_gets_an_explanation(models: Path) -> None:
    with FakeBotApi(TOKEN) as api:
        settings = settings_for(api, models, max_pixels=4_000_000, max_input_bytes=200_000)
        jpeg = noise_image(64, 64, seed=6, fmt="JPEG")
        png = noise_image(64, 64, seed=6)
        cases = {  # user id -> (update, words the reply must contain)
            20: (api.text_message(20, "hello"), "send me a photo"),
            21: (api.sticker_message(21), "stickers can't be stylized"),
            22: (api.animation_message(22), "animations (gifs) can't be stylized"),
            23: (api.video_message(23), "videos can't be stylized"),
            24: (
                api.document_message(24, b"%PDF-1.4 not an image", file_name="cv.pdf", mime_type="application/pdf"),
                "not an image",
            ),
            25: (
                api.document_message(25, b"\x89PNG\r\n\x1a\n garbage", file_name="broken.png", mime_type="image/png"),
                "couldn't read",
            ),
            26: (
                api.document_message(26, jpeg[: len(jpeg) // 2], file_name="cut.jpg", mime_type="image/jpeg"),
                "couldn't read",
            ),
            27: (api.document_message(27, _bomb_png(), file_name="bomb.png", mime_type="image/png"), "couldn't read"),
            28: (
                api.document_message(28, png, file_name="huge.png", mime_type="image/png", file_size=5_000_000),
                "the limit is",
            ),
            29: (api.text_message(29, "/frobnicate"), "don't know that command"),
            30: (api.custom_message(30, location={"latitude": 1.0, "longitude": 2.0}), "can't be stylized"),
        }
        with running_bot(settings):
            api.push_updates(*(update for update, _ in cases.values()))
            for user, (_, words) in cases.items():
                reply = only_reply(api, user)
                assert reply.method == "sendMessage", (user, reply.method)
                assert words in reply.params["text"].lower(), (user, reply.params["text"])
            # Nothing too large was downloaded, the bomb was refused before it was decoded in full.
            assert not any(p.endswith(".pdf") for p in api.file_downloads())
            assert len(api.file_downloads()) == 3  # broken.png, cut.jpg, bomb.png
            # and the bot still works
            api.push_updates(api.document_message(31, png, file_name="ok.png", mime_type="image/png"))
            assert only_reply(api, 31).method == "sendDocument"


def test_allowlist_and_rate_limit(models: Path) -> None:
    with FakeBotApi(TOKEN) as api:
        settings = settings_for(api, models, allowed_users=frozenset({40}), rate_limit=2)
        png = noise_image(32, 32, seed=8)
        with running_bot(settings):
            api.push_updates(
                api.text_message(41, "/start"), api.document_message(41, png, file_name="a.png", mime_type="image/png")
            )
            replies = api.wait_for_replies(41, 2)
            assert all(r.method == "sendMessage" and "private" in r.params["text"] for r in replies)
            for _ in range(3):  # one after the other, so that the order is known
                count = len(api.replies(40))
                api.push_updates(api.document_message(40, png, file_name="a.png", mime_type="image/png"))
                api.wait_for_replies(40, count + 1)
            methods = [r.method for r in api.replies(40)]
            assert methods == ["sendDocument", "sendDocument", "sendMessage"]
            assert "slow down" in api.replies(40)[2].params["text"].lower()
        assert not any(c.method == "GET file" and c.chat_id == 41 for c in api.calls)
        assert len(api.file_downloads()) == 2


def test_twenty_users_at_once_are_all_answered(models: Path) -> None:
    with FakeBotApi(TOKEN) as api:
        settings = settings_for(api, models, workers=2, queue_size=4)
        users = list(range(100, 120))
        images = {user: noise_image(160, 120, seed=user) for user in users}
        with running_bot(settings) as application:
            started = time.monotonic()
            api.push_updates(
                *(api.document_message(u, images[u], file_name=f"{u}.png", mime_type="image/png") for u in users)
            )
            outcome = {}
            for user in users:
                reply = only_reply(api, user, timeout=60)
                if reply.method == "sendDocument":
                    got = decode(reply.upload("document").data)
                    assert int(np.abs(got - expected(models / "a_cartoon.onnx", images[user], settings)).max()) <= 1
                    outcome[user] = "stylized"
                else:
                    assert "busy" in reply.params["text"], reply.params["text"]
                    outcome[user] = "busy"
            elapsed = time.monotonic() - started
            served = sum(1 for v in outcome.values() if v == "stylized")
            assert served >= settings.queue_size, outcome  # the admitted ones all finished
            # still alive and nothing held after the burst
            api.push_updates(api.text_message(99, "/start"))
            assert only_reply(api, 99).method == "sendMessage"
            pool = style_bot_of(application).pool
            assert pool.admitted == 0 and pool.running == 0
        print(f"20 users: {served} stylized, {20 - served} told busy, all answered in {elapsed:.1f} s")


def test_stop_answers_every_admitted_request(models: Path) -> None:
    """A stop while jobs run and wait: running ones are sent, waiting ones told to send again; none lost."""
    with FakeBotApi(TOKEN) as api:
        settings = settings_for(api, models, workers=1, queue_size=4, max_side=1024)
        users = [70, 71, 72, 73]
        with running_bot(settings) as application:
            pool = style_bot_of(application).pool
            api.push_updates(
                *(
                    api.document_message(u, noise_image(1024, 768, seed=u), file_name="big.png", mime_type="image/png")
                    for u in users
                )
            )
            api.wait_for(lambda calls: len([c for c in calls if c.method == "GET file"]) == len(users))
        # running_bot has stopped the application: every admitted request must have its answer by now.
        outcome = {}
        for user in users:
            replies = api.replies(user)
            assert len(replies) == 1, (user, [r.method for r in replies])
            outcome[user] = replies[0].method if replies[0].method == "sendDocument" else replies[0].params["text"]
            assert outcome[user] == "sendDocument" or "send the image again" in outcome[user], outcome[user]
        assert pool.admitted == 0 and pool.closing
        print(f"stop during a burst: {outcome}")


def test_logs_are_structured_and_never_show_the_token(models: Path) -> None:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", secrets=[TOKEN], stream=stream)
    root = logging.getLogger()
    try:
        with FakeBotApi(TOKEN) as api:
            settings = settings_for(api, models)
            with running_bot(settings):
                api.fail_next("sendMessage", code=400, description=f"Bad Request: echoing {TOKEN}")  # an error with it
                api.push_updates(api.text_message(50, "/help"))
                api.wait_for(lambda calls: any(c.method == "sendMessage" for c in calls))
                api.push_updates(
                    api.document_message(51, noise_image(40, 40), file_name="a.png", mime_type="image/png")
                )
                only_reply(api, 51)
    finally:
        root.removeHandler(handler)
        root.setLevel(logging.WARNING)
    text = stream.getvalue()
    assert TOKEN not in text and SECRET not in text
    stylized = [line for line in text.splitlines() if "event=stylized" in line]
    assert len(stylized) == 1
    for key in ("style=a_cartoon", "size_in=40x40", "download_ms=", "queue_ms=", "infer_ms=", "send_ms=", "total_ms="):
        assert key in stylized[0], (key, stylized[0])
    assert "event=handler_failed" in text  # the injected failure was logged, redacted


def _bot_process(env: dict[str, str], *, command: tuple[str, ...] = ("-m", "serve.bot")) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *command],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_process_refuses_to_start_with_a_broken_model(tmp_path: Path) -> None:
    (tmp_path / "good.onnx").write_bytes(make_test_model(tmp_path / "good.onnx").read_bytes())
    (tmp_path / "broken.onnx").write_bytes(b"this is not an ONNX model")
    process = _bot_process({"BOT_TOKEN": TOKEN, "BOT_MODELS_DIR": str(tmp_path)}, command=("-m", "serve", "bot"))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert "cannot start" in err and "broken.onnx" in err
    assert TOKEN not in out + err and SECRET not in out + err

    empty = tmp_path / "empty"
    empty.mkdir()
    process = _bot_process({"BOT_TOKEN": TOKEN, "BOT_MODELS_DIR": str(empty)})
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "no *.onnx models" in err

    process = _bot_process({"BOT_TOKEN": "", "BOT_MODELS_DIR": str(tmp_path)})
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2 and "BOT_TOKEN" in err


def test_process_serves_and_stops_gracefully_on_sigterm(models: Path, tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    with FakeBotApi(TOKEN) as api:
        process = _bot_process(
            {
                "BOT_TOKEN": TOKEN,
                "BOT_MODELS_DIR": str(models),
                "BOT_API_BASE_URL": api.base_url,
                "BOT_API_FILE_URL": api.base_file_url,
                "BOT_POLL_TIMEOUT": "1",
                "BOT_LOG_LEVEL": "DEBUG",
                "BOT_HEARTBEAT_FILE": str(heartbeat),
                "BOT_HEARTBEAT_SECONDS": "1",
            }
        )
        try:
            api.wait_for(lambda calls: any(c.method == "getUpdates" for c in calls), timeout=60)
            api.push_updates(api.document_message(60, noise_image(48, 32), file_name="p.png", mime_type="image/png"))
            assert only_reply(api, 60).method == "sendDocument"
            health = subprocess.run(
                [sys.executable, "-m", "serve.bot", "--healthcheck"],
                cwd=ROOT,
                text=True,
                capture_output=True,
                env={**os.environ, "BOT_HEARTBEAT_FILE": str(heartbeat), "BOT_HEARTBEAT_SECONDS": "1"},
                timeout=30,
            )
            assert health.returncode == 0, health.stdout
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, err[-3000:]
    assert "event=stylized" in err and "event=stopped" in err
    assert TOKEN not in out + err and SECRET not in out + err
    assert not heartbeat.exists()  # removed on a clean stop, so a stale file cannot pass the healthcheck
