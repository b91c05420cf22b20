"""A fake Telegram Bot API server on 127.0.0.1 for tests.

The real python-telegram-bot client talks plain HTTP to it (``ApplicationBuilder().base_url(
server.base_url).base_file_url(server.base_file_url)``), so everything between the bot's handlers
and the wire -- request encoding, multipart uploads, long polling, file downloads, error mapping --
runs for real. Only the Telegram side is simulated:

* ``POST /bot<token>/<method>``: getMe, getUpdates (long polling with ``timeout`` and ``offset``
  confirmation), getFile, sendMessage, sendPhoto, sendDocument (multipart), answerCallbackQuery,
  editMessageText, setMyCommands, deleteWebhook, getWebhookInfo, close, logOut. Anything else is a
  404 ``Not Found`` as on the real server, so an unexpected call shows up as an error.
* ``GET /file/bot<token>/<file_path>``: downloads of files added with :meth:`FakeBotApi.add_file`.

Tests inject updates (:meth:`push_updates`, built with the ``*_message`` helpers and
:meth:`callback_query`) and read every call back from :attr:`FakeBotApi.calls`, waiting with
:meth:`wait_for`. Errors use the Bot API's JSON shape and wording (``Bad Request: ...``), e.g.
editing a message to its current text answers ``message is not modified``.

It needs nothing beyond the standard library (plus Pillow for :func:`telegram_photo_sizes`).
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BOT_ID = 4242
BOT_USERNAME = "fake_style_bot"
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the real Bot API's getFile limit
# Telegram keeps a photo in several sizes; the longest side of each (the last is the original, capped).
PHOTO_SIDES = (90, 320, 800, 1280, 2560)

Json = dict[str, Any]


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class ApiCall:
    """One Bot API method call as the server received it."""

    method: str
    params: dict[str, str]
    files: dict[str, UploadedFile]
    time: float
    status: int = 200
    result: Any = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    def json(self, name: str) -> Any:
        """A parameter PTB sent JSON-encoded (``reply_markup``, ``commands``, ...)."""
        return json.loads(self.params[name])

    def upload(self, name: str) -> UploadedFile:
        """The file sent as parameter ``name`` (directly or via ``attach://``)."""
        value = self.params.get(name, "")
        if value.startswith("attach://"):
            return self.files[value[len("attach://") :]]
        return self.files[name]


class BotApiError(Exception):
    """Answered as ``{"ok": false, "error_code": ..., "description": ..., "parameters": ...}``."""

    def __init__(self, code: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes


@dataclass
class _Failure:
    method: str
    code: int
    description: str
    remaining: int
    parameters: Json | None = None


@dataclass
class _State:
    """Everything the server knows; guarded by ``FakeBotApi._cond``."""

    updates: list[Json] = field(default_factory=list)
    confirmed_offset: int = 0
    files: dict[str, _StoredFile] = field(default_factory=dict)
    files_by_path: dict[str, _StoredFile] = field(default_factory=dict)
    messages: dict[tuple[int, int], Json] = field(default_factory=dict)
    open_callbacks: set[str] = field(default_factory=set)
    calls: list[ApiCall] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    closing: bool = False


def _user(user_id: int, first_name: str = "") -> Json:
    return {"id": user_id, "is_bot": False, "first_name": first_name or f"user{user_id}", "language_code": "en"}


def _private_chat(user_id: int) -> Json:
    return {"id": user_id, "type": "private", "first_name": f"user{user_id}"}


def telegram_photo_sizes(image_bytes: bytes) -> list[tuple[bytes, int, int]]:
    """Re-encode an image the way Telegram stores a sent photo: JPEGs of growing size, smallest first."""
    from PIL import Image

    with Image.open(io.BytesIO(image_bytes)) as img:
        img = img.convert("RGB")
        longest = max(img.size)
        sizes: list[tuple[bytes, int, int]] = []
        for side in PHOTO_SIDES:
            scale = min(1.0, side / longest)
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            out = io.BytesIO()
            img.resize(size, Image.Resampling.LANCZOS).save(out, "JPEG", quality=87)
            sizes.append((out.getvalue(), size[0], size[1]))
            if scale == 1.0:
                break
        return sizes


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) resets connections when a burst of 20+ clients connects at once,
    # which the bot's HTTP client reports as a ReadError; the real Bot API accepts them.
    request_queue_size = 256
    daemon_threads = True
    block_on_close = False


class FakeBotApi:
    """The server. Use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, token: str, *, host: str = "127.0.0.1") -> None:
        self.token = token
        self._host = host
        self._cond = threading.Condition()
        self._state = _State()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.hide_file_sizes = False  # getFile without file_size, as some self-hosted servers answer

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeBotApi:
        handler = type("_BoundHandler", (_Handler,), {"api": self})
        self._server = _Server((self._host, 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-bot-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._state.closing = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self._host}:{self.port}/file/bot"

    # ------------------------------------------------------------------ test side: inject
    def add_file(self, data: bytes, *, suffix: str = ".bin", kind: str = "documents") -> Json:
        """Store a file users 'sent'; returns the fields every Bot API file object has."""
        n = next(self._ids)
        stored = _StoredFile(
            file_id=f"FILE{n:06d}-{kind}",
            file_unique_id=f"U{n:06d}",
            file_path=f"{kind}/file_{n}{suffix}",
            data=bytes(data),
        )
        with self._cond:
            self._state.files[stored.file_id] = stored
            self._state.files_by_path[stored.file_path] = stored
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_size": len(data)}

    def push_updates(self, *payloads: Json) -> list[int]:
        """Queue updates atomically (one getUpdates answer can carry all of them); returns their ids."""
        with self._cond:
            ids = []
            for payload in payloads:
                update_id = 1000 + len(self._state.updates)
                self._state.updates.append({"update_id": update_id, **payload})
                ids.append(update_id)
            self._cond.notify_all()
            return ids

    def fail_next(
        self,
        method: str,
        *,
        code: int = 400,
        description: str = "Bad Request: injected",
        times: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with this Bot API error (``retry_after``: a 429's
        ``parameters.retry_after``, as Telegram's flood control answers)."""
        parameters = {"retry_after": retry_after} if retry_after is not None else None
        with self._cond:
            self._state.failures.append(_Failure(method, code, description, times, parameters))

    # update builders -------------------------------------------------------------
    def custom_message(self, user_id: int, **content: Any) -> Json:
        """A message update from ``user_id`` in their private chat with any Bot API content fields."""
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": _private_chat(user_id),
            "from": _user(user_id),
            **content,
        }
        return {"message": message}

    def text_message(self, user_id: int, text: str) -> Json:
        content: Json = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self.custom_message(user_id, **content)

    def photo_message(self, user_id: int, image_bytes: bytes, *, caption: str | None = None) -> Json:
        """A compressed photo, stored in Telegram's sizes (see :func:`telegram_photo_sizes`)."""
        sizes = []
        for data, width, height in telegram_photo_sizes(image_bytes):
            sizes.append({**self.add_file(data, suffix=".jpg", kind="photos"), "width": width, "height": height})
        content: Json = {"photo": sizes}
        if caption:
            content["caption"] = caption
        return self.custom_message(user_id, **content)

    def photo_message_from_sizes(
        self, user_id: int, sizes: Iterable[tuple[bytes, int, int]], *, file_size: int | None = None
    ) -> Json:
        """A photo with explicit sizes; ``file_size`` overrides what the message claims (oversize tests)."""
        entries = []
        for data, width, height in sizes:
            entry = {**self.add_file(data, suffix=".jpg", kind="photos"), "width": width, "height": height}
            if file_size is not None:
                entry["file_size"] = file_size
            entries.append(entry)
        return self.custom_message(user_id, photo=entries)

    def document_message(
        self, user_id: int, data: bytes, *, file_name: str, mime_type: str | None, file_size: int | None = None
    ) -> Json:
        suffix = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ".bin"
        document = {**self.add_file(data, suffix=suffix), "file_name": file_name}
        if mime_type is not None:
            document["mime_type"] = mime_type
        if file_size is not None:
            document["file_size"] = file_size
        return self.custom_message(user_id, document=document)

    def sticker_message(self, user_id: int) -> Json:
        sticker = {
            **self.add_file(b"RIFF0000WEBPVP8 ", suffix=".webp", kind="stickers"),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "🙂",
        }
        return self.custom_message(user_id, sticker=sticker)

    def animation_message(self, user_id: int) -> Json:
        """A GIF: the Bot API sets both ``animation`` and ``document`` on such messages."""
        gif = {
            **self.add_file(b"GIF89a" + bytes(32), suffix=".mp4", kind="animations"),
            "file_name": "funny.gif.mp4",
            "mime_type": "video/mp4",
        }
        return self.custom_message(user_id, animation={**gif, "width": 320, "height": 240, "duration": 2}, document=gif)

    def video_message(self, user_id: int) -> Json:
        video = {
            **self.add_file(bytes(64), suffix=".mp4", kind="videos"),
            "width": 640,
            "height": 360,
            "duration": 3,
            "mime_type": "video/mp4",
        }
        return self.custom_message(user_id, video=video)

    def callback_query(self, user_id: int, message: Json, data: str) -> Json:
        """A press on an inline button of ``message`` (a message the bot sent, from :meth:`sent_message`)."""
        query_id = f"CQ{next(self._ids)}"
        with self._cond:
            self._state.open_callbacks.add(query_id)
        return {
            "callback_query": {
                "id": query_id,
                "from": _user(user_id),
                "message": message,
                "chat_instance": f"ci{user_id}",
                "data": data,
            }
        }

    # ------------------------------------------------------------------ test side: inspect
    @property
    def calls(self) -> list[ApiCall]:
        with self._cond:
            return list(self._state.calls)

    def calls_of(self, *methods: str, chat_id: int | None = None) -> list[ApiCall]:
        return [c for c in self.calls if c.method in methods and (chat_id is None or c.chat_id == chat_id)]

    def replies(self, chat_id: int) -> list[ApiCall]:
        """Successful messages the bot sent to ``chat_id`` (text, photo, document), in order."""
        return [c for c in self.calls_of("sendMessage", "sendPhoto", "sendDocument", chat_id=chat_id) if c.ok]

    def sent_message(self, call: ApiCall) -> Json:
        """The Message object the server returned for a send call (to build callback queries)."""
        assert isinstance(call.result, dict), f"{call.method} returned no message"
        return call.result

    def message(self, chat_id: int, message_id: int) -> Json:
        with self._cond:
            return dict(self._state.messages[(chat_id, message_id)])

    def wait_for(self, predicate: Callable[[list[ApiCall]], bool], timeout: float = 20.0) -> list[ApiCall]:
        """Block until ``predicate(calls)`` holds; raises ``TimeoutError`` listing what was seen."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self._state.calls)):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [
                        (c.method, c.params.get("chat_id"), c.params.get("text", "")[:60])
                        for c in self._state.calls
                        if c.method != "getUpdates"
                    ]
                    raise TimeoutError(f"condition not met within {timeout:.0f}s; calls seen: {seen}")
                self._cond.wait(min(left, 0.5))
            return list(self._state.calls)

    def wait_for_replies(self, chat_id: int, count: int = 1, timeout: float = 20.0) -> list[ApiCall]:
        self.wait_for(lambda calls: len(self.replies(chat_id)) >= count, timeout)
        return self.replies(chat_id)

    def pending_updates(self) -> int:
        """Updates not yet confirmed by the client (an offset past them)."""
        with self._cond:
            return sum(1 for u in self._state.updates if u["update_id"] >= self._state.confirmed_offset)

    def file_downloads(self) -> list[str]:
        """Paths the client downloaded (GET /file/...)."""
        return [c.params["file_path"] for c in self.calls_of("GET file")]

    # ------------------------------------------------------------------ server side
    def _record(self, call: ApiCall) -> None:
        with self._cond:
            self._state.calls.append(call)
            self._cond.notify_all()

    def _take_failure(self, method: str) -> _Failure | None:
        with self._cond:
            for failure in self._state.failures:
                if failure.method == method and failure.remaining > 0:
                    failure.remaining -= 1
                    return failure
        return None

    def handle(self, method: str, params: dict[str, str], files: dict[str, UploadedFile]) -> Any:
        failure = self._take_failure(method)
        if failure is not None:
            raise BotApiError(failure.code, failure.description, failure.parameters)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            raise BotApiError(404, "Not Found")
        return handler(params, files)

    def _api_getMe(self, params: dict[str, str], files: dict[str, UploadedFile]) -> Json:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Fake Style Bot",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _api_deleteWebhook(self, params: dict[str, str], files: dict[str, UploadedFile]) -> bool:
        if params.get("drop_pending_updates") == "true":
            with self._cond:
                self._state.confirmed_offset = 1000 + len(self._state.updates)
        return True

    def _api_getWebhookInfo(self, params: dict[str, str], files: dict[str, UploadedFile]) -> Json:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": self.pending_updates()}

    def _api_setMyCommands(self, params: dict[str, str], files: dict[str, UploadedFile]) -> bool:
        commands = json.loads(params["commands"])
        for command in commands:
            if not (1 <= len(command["command"]) <= 32 and 1 <= len(command["description"]) <= 256):
                raise BotApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        return True

    def _api_close(self, params: dict[str, str], files: dict[str, UploadedFile]) -> bool:
        return True

    def _api_logOut(self, params: dict[str, str], files: dict[str, UploadedFile]) -> bool:
        return True

    def _api_getUpdates(self, params: dict[str, str], files: dict[str, UploadedFile]) -> list[Json]:
        offset = int(params.get("offset", 0))
        limit = max(1, min(100, int(params.get("limit", 100))))
        timeout = max(0.0, min(float(params.get("timeout", 0)), 60.0))
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self._state.confirmed_offset = max(self._state.confirmed_offset, offset)
            while True:
                pending = [u for u in self._state.updates if u["update_id"] >= self._state.confirmed_offset]
                left = deadline - time.monotonic()
                if pending or left <= 0 or self._state.closing:
                    return pending[:limit]
                self._cond.wait(left)

    def _api_getFile(self, params: dict[str, str], files: dict[str, UploadedFile]) -> Json:
        with self._cond:
            stored = self._state.files.get(params.get("file_id", ""))
        if stored is None:
            raise BotApiError(400, "Bad Request: invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD_BYTES:
            raise BotApiError(400, "Bad Request: file is too big")
        answer = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_path": stored.file_path}
        if not self.hide_file_sizes:
            answer["file_size"] = len(stored.data)
        return answer

    def _chat_id(self, params: dict[str, str]) -> int:
        value = params.get("chat_id", "")
        if not value.lstrip("-").isdigit():
            raise BotApiError(400, "Bad Request: chat not found")
        return int(value)

    def _store_message(self, chat_id: int, **content: Any) -> Json:
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": _private_chat(chat_id),
            "from": self._api_getMe({}, {}),
            **content,
        }
        with self._cond:
            self._state.messages[(chat_id, message["message_id"])] = message
        return message

    def _markup(self, params: dict[str, str]) -> Json:
        if "reply_markup" not in params:
            return {}
        markup = json.loads(params["reply_markup"])
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if len(button.get("callback_data", "").encode()) > 64:
                    raise BotApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return {"reply_markup": markup}

    def _api_sendMessage(self, params: dict[str, str], files: dict[str, UploadedFile]) -> Json:
        chat_id = self._chat_id(params)
        text = params.get("text", "")
        if not text.strip():
            raise BotApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise BotApiError(400, "Bad Request: message is too long")
        return self._store_message(chat_id, text=text, **self._markup(params))

    def _uploaded(self, name: str, params: dict[str, str], files: dict[str, UploadedFile]) -> tuple[UploadedFile, Json]:
        value = params.get(name, "")
        key = value[len("attach://") :] if value.startswith("attach://") else name
        upload = files.get(key)
        if upload is None:
            raise BotApiError(400, f"Bad Request: there is no {name} in the request")
        stored = self.add_file(upload.data, suffix="." + upload.filename.rsplit(".", 1)[-1], kind=f"sent_{name}s")
        return upload, stored

    def _api_sendPhoto(self, params: dict[str, str], files: dict[str, UploadedFile]) -> Json:
        chat_id = self._chat_id(params)
        upload, stored = self._uploaded("photo", params, files)
        if len(upload.data) > 10 * 1024 * 1024:
            raise BotApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        from PIL import Image

        try:
            with Image.open(io.BytesIO(upload.data)) as img:
                width, height = img.size
        except Exception:  # noqa: BLE001 - the real server says the same for anything it cannot read
            raise BotApiError(400, "Bad Request: IMAGE_PROCESS_FAILED") from None
        if width + height > 10000 or max(width, height) > 20 * min(width, height):
            raise BotApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        return self._store_message(
            chat_id, photo=[{**stored, "width": width, "height": height}], **self._markup(params)
        )

    def _api_sendDocument(self, params: dict[str, str], files: dict[str, UploadedFile]) -> Json:
        chat_id = self._chat_id(params)
        upload, stored = self._uploaded("document", params, files)
        document = {**stored, "file_name": upload.filename, "mime_type": upload.content_type}
        return self._store_message(chat_id, document=document, **self._markup(params))

    def _api_sendChatAction(self, params: dict[str, str], files: dict[str, UploadedFile]) -> bool:
        self._chat_id(params)
        return True

    def _api_answerCallbackQuery(self, params: dict[str, str], files: dict[str, UploadedFile]) -> bool:
        with self._cond:
            query_id = params.get("callback_query_id", "")
            if query_id not in self._state.open_callbacks:
                raise BotApiError(
                    400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
                )
            self._state.open_callbacks.discard(query_id)
        return True

    def _api_editMessageText(self, params: dict[str, str], files: dict[str, UploadedFile]) -> Json:
        chat_id = self._chat_id(params)
        key = (chat_id, int(params.get("message_id", "0")))
        text = params.get("text", "")
        markup = self._markup(params)
        with self._cond:
            message = self._state.messages.get(key)
            if message is None:
                raise BotApiError(400, "Bad Request: message to edit not found")
            if message.get("text") == text and message.get("reply_markup") == markup.get("reply_markup"):
                raise BotApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup of the message",
                )
            message.pop("reply_markup", None)
            message.update(text=text, edit_date=int(time.time()), **markup)
            return dict(message)

    def file_bytes(self, file_path: str) -> bytes | None:
        with self._cond:
            stored = self._state.files_by_path.get(file_path)
            return stored.data if stored else None


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    params: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = UploadedFile(name, filename, part.get_content_type(), payload)
        else:
            params[name] = payload.decode("utf-8")
    return params, files


class _Handler(BaseHTTPRequestHandler):
    """Routes HTTP requests to the owning :class:`FakeBotApi` (set as the class attribute ``api``)."""

    api: FakeBotApi
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        """Silence the default stderr access log; every call is recorded instead."""

    def _send_json(self, status: int, payload: Json) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. a long poll cancelled on shutdown)

    def _token_and_rest(self, prefix: str) -> str | None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)  # PTB percent-encodes file URLs
        head = f"{prefix}{self.api.token}/"
        return path[len(head) :] if path.startswith(head) else None

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        rest = self._token_and_rest("/file/bot")
        if rest is None:
            self._send_json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        file_path = rest
        data = self.api.file_bytes(file_path)
        status = 200 if data is not None else 404
        self.api._record(ApiCall("GET file", {"file_path": file_path}, {}, time.monotonic(), status))
        if data is None:
            self._send_json(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        self._send(200, data, "application/octet-stream")

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        rest = self._token_and_rest("/bot")
        if rest is None:
            self._send_json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        method = rest.strip("/")
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            params, files = _parse_multipart(content_type, body)
        elif content_type.startswith("application/json"):
            params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in json.loads(body or b"{}").items()}
            files = {}
        else:
            params = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
            files = {}
        call = ApiCall(method, params, files, time.monotonic())
        try:
            call.result = self.api.handle(method, params, files)
        except BotApiError as exc:
            call.status = exc.code
            self.api._record(call)
            payload: Json = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.parameters is not None:
                payload["parameters"] = exc.parameters
            self._send_json(exc.code, payload)
            return
        self.api._record(call)
        self._send_json(200, {"ok": True, "result": call.result})
