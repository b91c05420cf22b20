"""Settings of the Telegram bot, read from environment variables and validated up front.

==========================  =============================================  ===============================
variable                    meaning                                        default
==========================  =============================================  ===============================
``BOT_TOKEN``               the bot token from @BotFather                  (this or ``BOT_TOKEN_FILE``)
``BOT_TOKEN_FILE``          file holding the token (Docker/K8s secrets)
``BOT_MODELS_DIR``          folder of exported ``*.onnx`` styles           ``models`` (unless only
                                                                           ``BOT_MODELS`` is set)
``BOT_MODELS``              more styles: ``.onnx`` files, folders,         empty
                            ``hf://user/name/file.onnx`` (comma-separated)
``BOT_ALLOWED_USERS``       comma-separated user ids; unset: everyone      unset
                            (set, it must list at least one id)
``BOT_MAX_INPUT_BYTES``     largest accepted upload (checked before        ``20971520`` (20 MiB, the Bot
                            downloading)                                   API's download limit)
``BOT_MAX_PIXELS``          largest decoded image (decompression bombs)    ``50000000``
``BOT_MAX_SIDE``            longest side of the stylized output            ``1024``
``BOT_FILE_MAX_SIDE``       longest side of file replies (``/quality       ``0`` (full resolution, large
                            file`` and images sent as files); 0: as sent   pictures in seam-free tiles)
``BOT_WORKERS``             inference threads (jobs running at once)       ``2``
``BOT_QUEUE_SIZE``          jobs admitted at once (running + waiting);     ``8``
                            beyond it users are told the bot is busy
``BOT_RATE_LIMIT``          images per user per minute; ``0``: no limit    ``10``
``BOT_API_BASE_URL``        Bot API URL (self-hosted servers)              ``https://api.telegram.org/bot``
``BOT_API_FILE_URL``        Bot API file URL                               ``https://api.telegram.org/file/bot``
``BOT_LOG_LEVEL``           DEBUG, INFO, WARNING, ERROR                    ``INFO``
``BOT_HEARTBEAT_FILE``      file the running bot touches (healthcheck)     unset: no heartbeat
``BOT_HEARTBEAT_SECONDS``   heartbeat period                               ``15``
``BOT_POLL_TIMEOUT``        long-polling timeout of getUpdates, seconds    ``30``
==========================  =============================================  ===============================

Every problem is reported at once in a :class:`SettingsError`; no message ever contains the token.

Logging (:func:`configure_logging`) writes one ``key=value`` line per record, e.g.
``ts=2026-01-01T12:00:00.123Z level=info logger=serve.bot event=stylized style=cartoon total_ms=812``, and
redacts the token from every record, exceptions included: the Bot API puts the token in every URL, and
httpx/PTB log URLs (httpx is also turned down to WARNING).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.runtime import available_cpus
from serve.hub import split_sources

DEFAULT_API_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_API_FILE_URL = "https://api.telegram.org/file/bot"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# "<bot id>:<secret>", the shape @BotFather hands out.
_TOKEN_PATTERN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_NO_TOKEN = "no bot token: set BOT_TOKEN or BOT_TOKEN_FILE"

T = TypeVar("T")


class SettingsError(ToolkitError, ValueError):
    """The environment does not describe a bot that can start; the message lists every problem."""


@dataclass(frozen=True)
class BotSettings:
    """Everything the bot needs to start; see the module docstring for the environment variables."""

    token: str = field(repr=False)
    models_dir: Path | None = Path("models")
    models: tuple[str, ...] = ()  # more model sources (serve.hub): files, folders, hf:// models
    allowed_users: frozenset[int] = frozenset()
    max_input_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 1024
    file_max_side: int = 0  # file replies: 0 keeps the picture's own size (tiled when large)
    workers: int = 2
    queue_size: int = 8
    rate_limit: int = 10
    api_base_url: str = DEFAULT_API_BASE_URL
    api_file_url: str = DEFAULT_API_FILE_URL
    log_level: str = "INFO"
    heartbeat_file: Path | None = None
    heartbeat_seconds: float = 15.0
    poll_timeout: float = 30.0

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise SettingsError("invalid bot settings:\n  - " + "\n  - ".join(problems))

    def problems(self) -> list[str]:
        """Every way these settings are unusable (empty when they are fine)."""
        problems = []
        if not self.token:
            problems.append(_NO_TOKEN)
        elif not _TOKEN_PATTERN.match(self.token):
            problems.append(
                "the bot token is malformed (expected '<digits>:<letters, digits, _ or ->' from @BotFather)"
            )
        if self.models_dir is None and not self.models:
            problems.append("no models: set BOT_MODELS_DIR (a folder of *.onnx files) or BOT_MODELS")
        elif self.models_dir is not None and not self.models_dir.is_dir():
            problems.append(f"BOT_MODELS_DIR={self.models_dir} is not a directory")
        for name, value, least in (
            ("BOT_MAX_INPUT_BYTES", self.max_input_bytes, 1024),
            ("BOT_MAX_PIXELS", self.max_pixels, 64 * 64),
            ("BOT_MAX_SIDE", self.max_side, 16),
            ("BOT_WORKERS", self.workers, 1),
            ("BOT_QUEUE_SIZE", self.queue_size, 1),
            ("BOT_RATE_LIMIT", self.rate_limit, 0),
            ("BOT_FILE_MAX_SIDE", self.file_max_side, 0),
        ):
            if value < least:
                problems.append(f"{name}={value} must be at least {least}")
        for name, value, most in (  # far beyond any real setting: a typo with extra zeros, not a wish
            ("BOT_MAX_INPUT_BYTES", self.max_input_bytes, 2 * 1024**3),
            ("BOT_MAX_PIXELS", self.max_pixels, 500_000_000),
            ("BOT_MAX_SIDE", self.max_side, 16384),
            ("BOT_FILE_MAX_SIDE", self.file_max_side, 65536),
            ("BOT_WORKERS", self.workers, 256),
            ("BOT_QUEUE_SIZE", self.queue_size, 100_000),
        ):
            if value > most:
                problems.append(f"{name}={value} must be at most {most}")
        if self.queue_size < self.workers:
            problems.append(f"BOT_QUEUE_SIZE={self.queue_size} must be at least BOT_WORKERS={self.workers}")
        for name, url in (("BOT_API_BASE_URL", self.api_base_url), ("BOT_API_FILE_URL", self.api_file_url)):
            if not url.startswith(("http://", "https://")):
                problems.append(f"{name}={url!r} must be an http(s) URL")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"BOT_LOG_LEVEL={self.log_level!r} must be one of {', '.join(LOG_LEVELS)}")
        if not 0 < self.heartbeat_seconds <= 3600:  # also refuses nan and inf
            problems.append(f"BOT_HEARTBEAT_SECONDS={self.heartbeat_seconds} must be between 0 and 3600 seconds")
        if not 0 <= self.poll_timeout <= 300:
            problems.append(f"BOT_POLL_TIMEOUT={self.poll_timeout} must be between 0 and 300 seconds")
        return problems

    @property
    def model_sources(self) -> list[str]:
        """What :func:`serve.hub.resolve_models` loads: the models folder, then ``BOT_MODELS``.

        The folder may be empty when ``BOT_MODELS`` names models (the image sets ``BOT_MODELS_DIR=/models``).
        """
        folder = [] if self.models_dir is None else [str(self.models_dir)]
        if self.models and self.models_dir is not None and not any(self.models_dir.glob("*.onnx")):
            folder = []
        return folder + list(self.models)

    @property
    def threads_per_worker(self) -> int:
        """onnxruntime intra-op threads per job, so that all workers together use each CPU once."""
        return max(1, available_cpus() // self.workers)

    def is_allowed(self, user_id: int | None) -> bool:
        return not self.allowed_users or (user_id is not None and user_id in self.allowed_users)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BotSettings:
        """Read the ``BOT_*`` variables (``os.environ`` by default); raises :class:`SettingsError`."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def get(name: str, parse: Callable[[str], T], default: T, kind: str) -> T:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return parse(raw)
            except ValueError:
                problems.append(f"{name}={raw!r} is not {kind}")
                return default

        token = _read_token(env, problems)
        heartbeat = env.get("BOT_HEARTBEAT_FILE", "").strip()
        models = tuple(split_sources(env.get("BOT_MODELS", "")))
        models_dir = env.get("BOT_MODELS_DIR", "").strip()
        values = dict(
            token=token,
            # BOT_MODELS alone serves only those; the default folder applies when neither is set.
            models_dir=Path(models_dir) if models_dir else (None if models else Path("models")),
            models=models,
            allowed_users=_allowed_users(env.get("BOT_ALLOWED_USERS"), problems),
            max_input_bytes=get("BOT_MAX_INPUT_BYTES", int, cls.max_input_bytes, "an integer"),
            max_pixels=get("BOT_MAX_PIXELS", int, cls.max_pixels, "an integer"),
            max_side=get("BOT_MAX_SIDE", int, cls.max_side, "an integer"),
            file_max_side=get("BOT_FILE_MAX_SIDE", int, cls.file_max_side, "an integer"),
            workers=get("BOT_WORKERS", int, cls.workers, "an integer"),
            queue_size=get("BOT_QUEUE_SIZE", int, cls.queue_size, "an integer"),
            rate_limit=get("BOT_RATE_LIMIT", int, cls.rate_limit, "an integer"),
            api_base_url=env.get("BOT_API_BASE_URL", "").strip() or DEFAULT_API_BASE_URL,
            api_file_url=env.get("BOT_API_FILE_URL", "").strip() or DEFAULT_API_FILE_URL,
            log_level=env.get("BOT_LOG_LEVEL", "").strip().upper() or "INFO",
            heartbeat_file=Path(heartbeat) if heartbeat else None,
            heartbeat_seconds=get("BOT_HEARTBEAT_SECONDS", float, cls.heartbeat_seconds, "a number"),
            poll_timeout=get("BOT_POLL_TIMEOUT", float, cls.poll_timeout, "a number"),
        )
        try:
            settings = cls(**values)  # type: ignore[arg-type]
        except SettingsError:
            problems.extend(_Unchecked(**values).problems())  # type: ignore[arg-type]
            settings = None
        if problems:
            raise SettingsError("invalid bot settings:\n  - " + "\n  - ".join(dict.fromkeys(problems)))
        assert settings is not None
        return settings


@dataclass(frozen=True)
class _Unchecked(BotSettings):
    """The same fields without validation on construction, to list every problem together."""

    def __post_init__(self) -> None:
        pass


def parse_user_ids(text: str) -> frozenset[int]:
    """``"123, 456 789"`` -> ``{123, 456, 789}`` (ASCII digits only)."""
    ids = [part for part in re.split(r"[\s,]+", text) if part]
    if not all(part.isascii() and part.isdigit() for part in ids):
        raise ValueError("user id list")
    return frozenset(int(part) for part in ids)


def _allowed_users(raw: str | None, problems: list[str]) -> frozenset[int]:
    """Unset: everyone may use the bot. Set, it must name someone: an allowlist that parses to nothing
    (``","``, ``" , "``, an empty value from a template) would otherwise open the bot to everyone."""
    if raw is None:
        return frozenset()
    try:
        ids = parse_user_ids(raw)
    except ValueError:
        problems.append(f"BOT_ALLOWED_USERS={raw.strip()!r} is not a comma-separated list of numeric user ids")
        return frozenset()
    if not ids:
        problems.append(
            f"BOT_ALLOWED_USERS={raw!r} is set but lists no user id: list the ids allowed to use the bot, "
            "or unset the variable to allow everyone"
        )
    return ids


def _read_token(env: Mapping[str, str], problems: list[str]) -> str:
    token = env.get("BOT_TOKEN", "").strip()
    token_file = env.get("BOT_TOKEN_FILE", "").strip()
    if token and token_file:
        problems.append("set BOT_TOKEN or BOT_TOKEN_FILE, not both")
    elif token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(f"BOT_TOKEN_FILE={token_file} cannot be read: {exc.strerror}")
        except UnicodeDecodeError:
            problems.append(f"BOT_TOKEN_FILE={token_file} is not a text file (a token is ASCII)")
    elif not token:
        problems.append(_NO_TOKEN)
    return token


# ---------------------------------------------------------------------------------------------- logging
REDACTED = "<redacted>"
_KV_ATTR = "kv"  # LogRecord attribute holding the fields of log_event()


def log_event(
    logger: logging.Logger, event: str, *, level: int = logging.INFO, exc_info: Any = None, **fields: Any
) -> None:
    """Log one event with ``key=value`` fields (the message alone reads ``event`` for plain formatters)."""
    logger.log(level, event, exc_info=exc_info, extra={_KV_ATTR: fields})


class TokenRedactingFilter(logging.Filter):
    """Replace secrets in a record's message, fields and exception text before any handler formats it.

    Attach it to *handlers*: a logger's filters do not see records propagated from child loggers.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # The whole token and its secret half (after "<bot id>:"), longest first.
        parts = set()
        for secret in secrets:
            if secret:
                parts.add(secret)
                parts.add(secret.replace(":", "%3A"))
                if ":" in secret and len(secret.split(":", 1)[1]) >= 8:
                    parts.add(secret.split(":", 1)[1])
        self._secrets = sorted(parts, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        fields = getattr(record, _KV_ATTR, None)
        if fields:
            setattr(record, _KV_ATTR, {k: self.redact(v) if isinstance(v, str) else v for k, v in fields.items()})
        return True


def _kv_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... event=... k=v`` for log_event() records, ``msg="..."`` for the rest."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [f"ts={ts}", f"level={record.levelname.lower()}", f"logger={record.name}"]
        fields = getattr(record, _KV_ATTR, None)
        if fields is not None:
            parts.append(f"event={_kv_value(record.getMessage())}")
            parts.extend(f"{key}={_kv_value(value)}" for key, value in fields.items())
        else:
            parts.append(f"msg={_kv_value(record.getMessage())}")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            parts.append(f"exc={_kv_value(record.exc_text)}")
        return " ".join(parts)


def configure_logging(level: str, *, secrets: Iterable[str], stream: TextIO | None = None) -> logging.Handler:
    """Send all logging to ``stream`` (stderr) as key=value lines with ``secrets`` redacted; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(TokenRedactingFilter(secrets))
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # PTB warns through `warnings`; route those through the redacting handler too
    for noisy in ("httpx", "httpcore"):  # they log every request URL, token included
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler
