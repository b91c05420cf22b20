"""The Telegram bot: photos in, stylized photos out, with every ONNX style in a folder.

Run it with ``cyclegan bot`` / ``python -m serve bot`` (or ``python -m serve.bot``), configured by
``BOT_*`` environment variables -- see :mod:`serve.bot_config` for the full table. The essentials::

    BOT_TOKEN=123:abc BOT_MODELS_DIR=models/ cyclegan bot

How it is built (python-telegram-bot v22, async):

* one :class:`~serve.stylizer.Stylizer` per ``*.onnx`` file, all loaded at start-up; a model that
  does not load, or an empty folder, stops the start with a clear message and exit code 1
  (bad settings: exit code 2);
* handlers in :mod:`serve.bot_handlers`; the Application processes updates concurrently, and image
  work runs on a bounded :class:`~serve.bot_worker.InferencePool` (``BOT_WORKERS`` threads,
  ``BOT_QUEUE_SIZE`` admitted requests) so that the event loop keeps answering while images compute;
* SIGINT/SIGTERM stop it gracefully: polling stops, running jobs finish and are sent, admitted jobs
  that had not started yet are answered "restarting, send again", then the process exits 0. Give the
  container a stop timeout above the slowest image (``docker run --stop-timeout 30``);
* with ``BOT_HEARTBEAT_FILE`` set, the event loop rewrites that file every ``BOT_HEARTBEAT_SECONDS``
  while polling; ``python -m serve.bot --healthcheck`` fails when it is missing or older than three
  periods (the container's HEALTHCHECK).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from telegram import Update
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from cyclegan.contract.errors import EXIT_FAILED, ToolkitError
from cyclegan.contract.files import OutputError, write_text_atomic
from serve.bot_config import BotSettings, SettingsError, configure_logging, log_event
from serve.bot_handlers import COMMANDS, StyleBot, StyleCatalog, StylizerLike
from serve.bot_worker import InferencePool, RateLimiter

logger = logging.getLogger("serve.bot")

FLOOD_RETRIES = 3  # a request refused with RetryAfter is retried this often before the handler gives up
STYLE_BOT_KEY = "style_bot"  # application.bot_data[STYLE_BOT_KEY] -> the StyleBot (settings, styles, pool)


class StartupError(ToolkitError):
    """The bot cannot start (models, token, Bot API unreachable); the message says what to fix."""

    exit_code = EXIT_FAILED


def load_stylizers(settings: BotSettings) -> list[StylizerLike]:
    """One Stylizer per model of ``BOT_MODELS_DIR`` and ``BOT_MODELS`` (serve.hub), in order; all must load."""
    from serve.hub import ModelSourceError, resolve_models
    from serve.stylizer import ModelLoadError, Stylizer  # onnxruntime: not needed by --healthcheck

    try:
        paths = resolve_models(settings.model_sources)
    except ModelSourceError as exc:  # says which source and what to do (in the container: mount models at /models)
        raise StartupError(str(exc)) from None
    stylizers: list[StylizerLike] = []
    for path in paths:
        try:
            stylizers.append(Stylizer(path, threads=settings.threads_per_worker, max_side=settings.max_side))
        except ModelLoadError as exc:
            raise StartupError(f"model {path} does not load: {exc}") from None
    return stylizers


def build_application(settings: BotSettings, stylizers: Sequence[StylizerLike]) -> Application:
    """The PTB Application with every handler; ``bot_data[STYLE_BOT_KEY]`` holds the :class:`StyleBot`."""
    style_bot = StyleBot(
        settings,
        StyleCatalog.from_stylizers(stylizers),
        InferencePool(settings.workers, settings.queue_size),
        RateLimiter(settings.rate_limit),
    )

    application = (
        ApplicationBuilder()
        .token(settings.token)
        # Outgoing flood control: Telegram's limits kept, and a RetryAfter (429) waited out and retried.
        .rate_limiter(AIORateLimiter(max_retries=FLOOD_RETRIES))
        .base_url(settings.api_base_url)
        .base_file_url(settings.api_file_url)
        # Refusals ("busy") must not wait behind running jobs, so handle more updates than the pool admits.
        .concurrent_updates(max(32, 4 * settings.queue_size))
        .media_write_timeout(60)
        .read_timeout(30)
        .build()
    )
    application.bot_data[STYLE_BOT_KEY] = style_bot
    style_bot.register(application)
    return application


def style_bot_of(application: Application) -> StyleBot:
    return application.bot_data[STYLE_BOT_KEY]


async def run_application(application: Application, stop: asyncio.Event) -> None:
    """Poll until ``stop`` is set, then shut down gracefully (see the module docstring)."""
    style_bot = style_bot_of(application)
    settings = style_bot.settings
    async with application:  # initialize() ... shutdown()
        with contextlib.suppress(TelegramError):  # a nicety: the command menu of Telegram clients
            await application.bot.set_my_commands(COMMANDS)
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(
            timeout=settings.poll_timeout, allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY]
        )
        log_event(
            logger,
            "started",
            bot=application.bot.username,
            styles=",".join(s.key for s in style_bot.catalog),
            workers=settings.workers,
            threads_per_worker=settings.threads_per_worker,
            queue_size=settings.queue_size,
        )
        for style in style_bot.catalog:  # what the export measured (int8: PSNR vs fp32, speed, CPU, recipe)
            if style.stylizer.card.measured:
                log_event(logger, "model", style=style.key, measured=style.stylizer.card.measured)
        heartbeat = asyncio.create_task(_heartbeat(application, settings), name="heartbeat")
        sweeper = asyncio.create_task(_sweep_rate_limiter(style_bot.limiter), name="rate-limiter-sweep")
        try:
            await stop.wait()
        finally:
            log_event(logger, "stopping", admitted=style_bot.pool.admitted, running=style_bot.pool.running)
            heartbeat.cancel()
            sweeper.cancel()
            style_bot.pool.close()  # running jobs go on; the rest are answered "restarting"
            await application.updater.stop()
            await application.stop()  # waits for every update being handled
            await style_bot.pool.shutdown()
            if settings.heartbeat_file is not None:
                settings.heartbeat_file.unlink(missing_ok=True)
    log_event(logger, "stopped")


async def _sweep_rate_limiter(limiter: RateLimiter) -> None:
    """Let the rate limiter forget idle users even when no request comes to trigger it."""
    while True:
        await asyncio.sleep(limiter.window_s)
        limiter.sweep()


async def _heartbeat(application: Application, settings: BotSettings) -> None:
    """Rewrite the heartbeat file while the loop runs and polling is on; a stuck loop lets it age."""
    path = settings.heartbeat_file
    if path is None:
        return
    style_bot = style_bot_of(application)
    while True:
        if application.running and application.updater is not None and application.updater.running:
            beat = {
                "time": time.time(),
                "pid": os.getpid(),
                "styles": len(style_bot.catalog),
                "admitted": style_bot.pool.admitted,
                "running": style_bot.pool.running,
            }
            try:
                write_text_atomic(path, json.dumps(beat))
            except OutputError as exc:  # the healthcheck reports the missing beat; the bot keeps serving
                log_event(logger, "heartbeat_failed", level=logging.WARNING, error=str(exc))
        await asyncio.sleep(settings.heartbeat_seconds)


async def _serve_until_signal(application: Application) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_application(application, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_bot(settings: BotSettings) -> None:
    """Load the models, then serve until SIGINT/SIGTERM; raises :class:`StartupError` when it cannot start."""
    stylizers = load_stylizers(settings)
    application = build_application(settings, stylizers)
    try:
        asyncio.run(_serve_until_signal(application))
    except InvalidToken:
        raise StartupError("the Bot API rejected the token (check BOT_TOKEN / BOT_TOKEN_FILE)") from None
    except NetworkError as exc:
        raise StartupError(f"cannot reach the Bot API at {settings.api_base_url}: {exc}") from None


def run_bot_from_env(environ: Mapping[str, str] | None = None) -> None:
    """Entry point of ``cyclegan bot``: settings from the environment, logging, then :func:`run_bot`.

    Exits with status 2 on bad settings and 1 when the bot cannot start; returns after a clean stop.
    """
    try:
        settings = BotSettings.from_env(environ)
    except SettingsError as exc:
        print(f"cyclegan bot: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    configure_logging(settings.log_level, secrets=[settings.token])
    try:
        run_bot(settings)
    except StartupError as exc:
        log_event(logger, "cannot_start", level=logging.CRITICAL, reason=str(exc))
        print(f"cyclegan bot: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


def healthcheck(environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Is the bot's event loop alive and polling? Judged by the age of its heartbeat file."""
    env = os.environ if environ is None else environ
    name = env.get("BOT_HEARTBEAT_FILE", "").strip()
    if not name:
        return False, "BOT_HEARTBEAT_FILE is not set, so there is no heartbeat to check"
    raw_period = env.get("BOT_HEARTBEAT_SECONDS", "").strip()
    try:
        period = float(raw_period or BotSettings.heartbeat_seconds)
    except ValueError:
        period = math.nan
    if not 0 < period <= 3600:
        return False, f"BOT_HEARTBEAT_SECONDS={raw_period!r} is not a period between 0 and 3600 seconds"
    try:
        beat = json.loads(Path(name).read_text(encoding="utf-8"))
        stamp = beat["time"]
        if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp):
            raise ValueError(f"its time is {stamp!r}, not a finite number")
        age = time.time() - stamp
    except FileNotFoundError:
        return False, f"no heartbeat at {name}: the bot is starting, stopped or never loaded its models"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"unreadable heartbeat at {name}: {exc}"
    if age > 3 * period:
        return False, f"last heartbeat {age:.0f} s ago (expected every {period:g} s): the event loop is stuck"
    if age < -period:  # a clock step or a file written by something else cannot prove the loop is alive
        return False, f"the heartbeat at {name} is {-age:.0f} s in the future: the clock changed or it is not ours"
    return (
        True,
        f"ok: {beat.get('styles')} styles, {beat.get('admitted')} requests in progress, heartbeat {age:.0f} s ago",
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serve.bot", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--healthcheck",
        action="store_true",
        help="exit 0 if a running bot's heartbeat is fresh, else 1 (for container HEALTHCHECKs)",
    )
    args = parser.parse_args(argv)
    if args.healthcheck:
        healthy, why = healthcheck()
        print(why)
        raise SystemExit(0 if healthy else 1)
    run_bot_from_env()


if __name__ == "__main__":
    main()
