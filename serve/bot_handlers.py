"""What the bot does with each kind of update: commands, style choice, images, and everything else.

Reply format: a *photo* (compressed by Telegram on the way in) is answered with a photo, unless the
chat switched ``/quality file`` on; an image sent as a *file* (uncompressed) is always answered with a
lossless PNG file. Per chat, ``context.chat_data`` keeps the chosen style and that switch.

An image request goes: allowlist (group -1) -> kind and size checks (before any download) -> per-user
rate limit -> a slot in the :class:`~serve.bot_worker.InferencePool` (or "busy") -> download ->
decode, stylize and encode on a worker thread -> reply. Every refusal is a reply that says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Protocol

from PIL import Image
from telegram import (
    BotCommand,
    CallbackQuery,
    Document,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    PhotoSize,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from cyclegan.contract.card import GeneratorCard, style_titles
from cyclegan.contract.files import safe_stem
from cyclegan.contract.images import JPEG_QUALITY, ImageInputError, is_image_name, open_image
from serve.bot_config import BotSettings, log_event
from serve.bot_worker import InferencePool, PoolClosedError, QueueFullError, RateLimiter

logger = logging.getLogger("serve.bot")

Context = ContextTypes.DEFAULT_TYPE
STYLE_KEY = "style"  # chat_data: key of the chosen style
REPLY_AS_FILE_KEY = "reply_as_file"  # chat_data: answer photos with PNG files
CALLBACK_PREFIX = "style:"

COMMANDS = (
    BotCommand("start", "what this bot does"),
    BotCommand("styles", "choose a style"),
    BotCommand("quality", "photo or lossless file replies"),
    BotCommand("help", "limits and tips"),
)


class StylizerLike(Protocol):
    """What the bot needs of :class:`serve.stylizer.Stylizer`."""

    name: str
    card: GeneratorCard

    def stylize(self, image: Image.Image, *, max_side: int | None = None) -> Image.Image: ...


@dataclass(frozen=True)
class Style:
    key: str  # stable across restarts (derived from the model's name) and short enough for callback data
    title: str
    stylizer: StylizerLike


class StyleCatalog:
    """The styles the bot offers, in a fixed order; the first is every chat's default."""

    def __init__(self, styles: Sequence[Style]) -> None:
        if not styles:
            raise ValueError("a bot needs at least one style")
        self._styles = list(styles)
        self._by_key = {style.key: style for style in styles}
        if len(self._by_key) != len(self._styles):
            raise ValueError("style keys must be unique")

    @classmethod
    def from_stylizers(cls, stylizers: Sequence[StylizerLike]) -> StyleCatalog:
        """Title each style from its card; titles shared by several models get the model name added."""
        titles = style_titles([(s.name, s.card) for s in stylizers])
        return cls([Style(_style_key(s.name), title, s) for s, title in zip(stylizers, titles)])

    @property
    def default(self) -> Style:
        return self._styles[0]

    def get(self, key: str | None) -> Style | None:
        return self._by_key.get(key) if key is not None else None

    def __iter__(self) -> Iterator[Style]:
        return iter(self._styles)

    def __len__(self) -> int:
        return len(self._styles)


def _style_key(name: str) -> str:
    """The model name when it fits in callback data (64 bytes), else a stable hash of it."""
    if len((CALLBACK_PREFIX + name).encode()) <= 64:
        return name
    return hashlib.sha1(name.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Rendered:
    """A stylized image, encoded and ready to send."""

    data: bytes
    filename: str
    as_file: bool
    input_size: tuple[int, int]
    output_size: tuple[int, int]


UPLOAD_LIMIT_BYTES = 50 * 1000 * 1000  # the Bot API's limit for files bots send


def render(
    data: bytes, stylizer: StylizerLike, *, max_pixels: int, max_side: int, as_file: bool, stem: str
) -> Rendered:
    """Decode, stylize and encode one image (CPU-bound: runs on a worker thread)."""
    image = open_image(data, max_pixels=max_pixels)
    output = stylizer.stylize(image, max_side=max_side)
    buffer = io.BytesIO()
    if as_file:
        output.save(buffer, "PNG")
        filename = f"{stem}.png"
        if buffer.tell() > UPLOAD_LIMIT_BYTES:  # a full-resolution PNG over the Bot API's upload limit
            buffer = io.BytesIO()
            output.save(buffer, "JPEG", quality=95, subsampling=0)
            filename = f"{stem}.jpg"
    else:
        output.save(buffer, "JPEG", quality=JPEG_QUALITY)
        filename = f"{stem}.jpg"
    return Rendered(buffer.getvalue(), filename, as_file, image.size, output.size)


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _reply_to(message: Message) -> ReplyParameters:
    """Quote the user's message; still answer if they deleted it meanwhile."""
    return ReplyParameters(message_id=message.message_id, allow_sending_without_reply=True)


class StyleBot:
    """The handlers, bound to the bot's settings, styles, pool and rate limiter."""

    def __init__(self, settings: BotSettings, catalog: StyleCatalog, pool: InferencePool, limiter: RateLimiter) -> None:
        self.settings = settings
        self.catalog = catalog
        self.pool = pool
        self.limiter = limiter

    def register(self, application: Application) -> None:
        """Add every handler; order matters within a group (the first match wins)."""
        new = filters.UpdateType.MESSAGE  # not edits (re-editing a caption must not re-run a photo)
        application.add_handler(TypeHandler(Update, self.enforce_allowlist), group=-1)
        application.add_handlers(
            [
                CommandHandler("start", self.start, filters=new),
                CommandHandler("help", self.help, filters=new),
                CommandHandler("styles", self.styles, filters=new),
                CommandHandler("quality", self.quality, filters=new),
                CallbackQueryHandler(self.choose_style, pattern=f"^{CALLBACK_PREFIX}"),
                CallbackQueryHandler(self.stale_button),
                MessageHandler(new & filters.COMMAND, self.unknown_command),
                # Before documents: a GIF arrives with both `animation` and `document` set.
                MessageHandler(new & filters.ANIMATION, self.unsupported("Animations (GIFs)")),
                MessageHandler(new & filters.PHOTO, self.image),
                MessageHandler(new & filters.Document.ALL, self.image),
                MessageHandler(new & filters.Sticker.ALL, self.unsupported("Stickers")),
                MessageHandler(new & (filters.VIDEO | filters.VIDEO_NOTE), self.unsupported("Videos")),
                MessageHandler(new & filters.TEXT, self.text),
                MessageHandler(new, self.unsupported("This kind of message")),
            ]
        )
        application.add_error_handler(self.on_error)

    # ------------------------------------------------------------------ access
    async def enforce_allowlist(self, update: Update, context: Context) -> None:
        user = update.effective_user
        if self.settings.is_allowed(user.id if user else None):
            return
        log_event(logger, "denied", user=user.id if user else None)
        if update.callback_query:
            await update.callback_query.answer("This bot is private.", show_alert=True)
        elif update.effective_message:
            await update.effective_message.reply_text(
                "Sorry, this bot is private. Ask its owner to add your user id "
                f"({user.id if user else 'unknown'}) to BOT_ALLOWED_USERS."
            )
        raise ApplicationHandlerStop

    # ------------------------------------------------------------------ commands
    def _style_of(self, context: Context) -> Style:
        chat_data = context.chat_data if context.chat_data is not None else {}
        return self.catalog.get(chat_data.get(STYLE_KEY)) or self.catalog.default

    def _replies_as_file(self, context: Context) -> bool:
        return bool(context.chat_data and context.chat_data.get(REPLY_AS_FILE_KEY))

    async def start(self, update: Update, context: Context) -> None:
        message = update.effective_message
        assert message is not None
        style = self._style_of(context)
        await message.reply_text(
            "Send me a photo and I'll redraw it in a learned style.\n"
            f"Current style: {style.title}. /styles lists all {len(self.catalog)}.\n"
            "Send the image as a file for a lossless PNG back; /quality changes how photos are answered. "
            "/help for limits."
        )

    async def help(self, update: Update, context: Context) -> None:
        message = update.effective_message
        assert message is not None
        s = self.settings
        rate = f"{s.rate_limit} images per minute" if s.rate_limit else "no rate limit"
        await message.reply_text(
            "Send a photo, or an image as a file (JPEG, PNG, WebP, ...).\n"
            f"Limits: files up to {_megabytes(s.max_input_bytes)}, up to {s.max_pixels / 1e6:.0f} megapixels; "
            f"photo results are at most {s.max_side} px on the longer side, file results "
            f"{f'at most {s.file_max_side} px' if s.file_max_side else 'keep the full resolution'}; {rate}.\n"
            "/styles - choose a style\n"
            "/quality - answer photos with a photo (fast) or a lossless PNG file (full resolution)\n"
            "/start - introduction"
        )

    def _style_keyboard(self, current: Style) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        ("✓ " if style == current else "") + style.title, callback_data=CALLBACK_PREFIX + style.key
                    )
                ]
                for style in self.catalog
            ]
        )

    async def styles(self, update: Update, context: Context) -> None:
        message = update.effective_message
        assert message is not None
        current = self._style_of(context)
        notes = [
            f"{style.title}: {style.stylizer.card.measured}" for style in self.catalog if style.stylizer.card.measured
        ]
        await message.reply_text(
            f"Current style: {current.title}. Pick one:" + "".join("\n· " + note for note in notes),
            reply_markup=self._style_keyboard(current),
        )

    async def choose_style(self, update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None
        style = self.catalog.get(query.data[len(CALLBACK_PREFIX) :])
        if style is None:
            await query.answer("That style is no longer offered; send /styles again.", show_alert=True)
            return
        if context.chat_data is not None:
            context.chat_data[STYLE_KEY] = style.key
        log_event(logger, "style_chosen", user=query.from_user.id, style=style.key)
        await query.answer(f"Style: {style.title}")
        with contextlib.suppress(BadRequest):  # "message is not modified" when picking the current style again
            await query.edit_message_text(
                f"Style set to {style.title}. Send me a photo.", reply_markup=self._style_keyboard(style)
            )

    async def stale_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("This button is no longer valid.")

    async def quality(self, update: Update, context: Context) -> None:
        message = update.effective_message
        assert message is not None and context.chat_data is not None
        arg = (context.args or [""])[0].lower()
        if arg not in ("", "file", "photo"):
            await message.reply_text("Use /quality file (lossless PNG replies) or /quality photo (compressed photos).")
            return
        as_file = (not self._replies_as_file(context)) if arg == "" else arg == "file"
        context.chat_data[REPLY_AS_FILE_KEY] = as_file
        await message.reply_text(
            "Photos will be answered with a lossless PNG file."
            if as_file
            else "Photos will be answered with a photo (compressed by Telegram). "
            "Images sent as files still get a file back."
        )

    async def unknown_command(self, update: Update, context: Context) -> None:
        message = update.effective_message
        assert message is not None
        await message.reply_text("I don't know that command. Try /help.", reply_parameters=_reply_to(message))

    async def text(self, update: Update, context: Context) -> None:
        message = update.effective_message
        assert message is not None
        await message.reply_text(
            "Send me a photo (or an image file) to stylize. /styles to pick a style, /help for more."
        )

    def unsupported(self, what: str):  # noqa: ANN201 - a handler callback
        async def reply(update: Update, context: Context) -> None:
            message = update.effective_message
            assert message is not None
            log_event(
                logger,
                "rejected",
                reason="unsupported",
                kind=what,
                user=message.from_user.id if message.from_user else None,
            )
            await message.reply_text(
                f"{what} can't be stylized. Send a photo or an image file.", reply_parameters=_reply_to(message)
            )

        return reply

    # ------------------------------------------------------------------ images
    def _pick_photo(self, sizes: Sequence[PhotoSize], *, as_file: bool = False) -> PhotoSize | None:
        """The smallest size that still covers the output side (less to download and decode), else the largest."""
        fitting = [p for p in sizes if p.file_size is None or p.file_size <= self.settings.max_input_bytes]
        if not fitting:
            return None
        fitting.sort(key=lambda p: p.width * p.height)
        side = (self.settings.file_max_side or 1 << 30) if as_file else self.settings.max_side
        for photo in fitting:
            if max(photo.width, photo.height) >= side:
                return photo
        return fitting[-1]

    def _is_image_document(self, document: Document) -> bool:
        mime = (document.mime_type or "").lower()
        if mime.startswith("image/"):
            return True
        return mime in ("", "application/octet-stream") and is_image_name(PurePath(document.file_name or ""))

    async def image(self, update: Update, context: Context) -> None:
        message = update.effective_message
        assert message is not None
        user_id = message.from_user.id if message.from_user else message.chat_id
        started = time.perf_counter()
        source: PhotoSize | Document | None
        if message.photo:
            stem, as_file = f"photo_{message.message_id}", self._replies_as_file(context)
            source = self._pick_photo(message.photo, as_file=as_file)
            if source is None:
                await self._refuse(
                    message, "too_large", f"This photo is larger than {_megabytes(self.settings.max_input_bytes)}."
                )
                return
        else:
            source = message.document
            assert source is not None
            stem = safe_stem(PurePath(source.file_name or "").stem, f"image_{message.message_id}")
            as_file = True
            if not self._is_image_document(source):
                await self._refuse(
                    message,
                    "not_an_image",
                    f"That file ({source.mime_type or 'unknown type'}) is not an image. Send a photo or an image file "
                    "(JPEG, PNG, WebP, ...).",
                )
                return
        if source.file_size is not None and source.file_size > self.settings.max_input_bytes:
            await self._refuse(
                message,
                "too_large",
                f"That file is {_megabytes(source.file_size)}; "
                f"the limit is {_megabytes(self.settings.max_input_bytes)}. "
                "Send a smaller image or a photo.",
            )
            return
        wait = self.limiter.retry_after(user_id)
        if wait > 0:
            await self._refuse(
                message,
                "rate_limited",
                f"Slow down a little: up to {self.settings.rate_limit} images per minute. Try again in {wait:.0f} s.",
            )
            return
        style = self._style_of(context)
        try:
            with self.pool.admit():
                self.limiter.record(user_id)
                await self._stylize(
                    message, context, source, style, stem=f"{stem}-{style.key}", as_file=as_file, started=started
                )
        except QueueFullError:
            await self._refuse(message, "busy", "I'm busy with other images right now. Please try again in a moment.")
        except PoolClosedError:
            await self._refuse(message, "shutting_down", "I'm restarting. Please send the image again in a minute.")

    async def _stylize(
        self,
        message: Message,
        context: Context,
        source: PhotoSize | Document,
        style: Style,
        *,
        stem: str,
        as_file: bool,
        started: float,
    ) -> None:
        with contextlib.suppress(TelegramError):  # only a courtesy
            await context.bot.send_chat_action(
                message.chat_id, ChatAction.UPLOAD_DOCUMENT if as_file else ChatAction.UPLOAD_PHOTO
            )
        too_large = f"That file is larger than {_megabytes(self.settings.max_input_bytes)}. Send a smaller image."
        try:
            file = await source.get_file()
        except BadRequest as exc:
            if "too big" not in str(exc).lower():
                raise
            # A document sent without a declared size: the Bot API refuses files over its download limit.
            await self._refuse(message, "too_large", too_large)
            return
        if file.file_size is not None and file.file_size > self.settings.max_input_bytes:
            await self._refuse(message, "too_large", too_large)
            return
        data = bytes(await file.download_as_bytearray())
        if len(data) > self.settings.max_input_bytes:  # a (self-hosted) server that did not say the size
            await self._refuse(message, "too_large", too_large)
            return
        downloaded = time.perf_counter()
        try:
            done = await self.pool.run(
                render,
                data,
                style.stylizer,
                max_pixels=self.settings.max_pixels,
                # File replies keep the resolution (0: as sent; large pictures run in seam-free tiles).
                max_side=self.settings.file_max_side if as_file else self.settings.max_side,
                as_file=as_file,
                stem=stem,
            )
        except ImageInputError as exc:
            await self._refuse(message, "bad_image", f"I couldn't read that image: {exc}")
            return
        rendered = done.result
        computed = time.perf_counter()
        caption = f"{style.title} · {rendered.output_size[0]}×{rendered.output_size[1]}"
        sent_as = await self._send(message, rendered, caption)
        finished = time.perf_counter()
        log_event(
            logger,
            "stylized",
            user=message.from_user.id if message.from_user else None,
            chat=message.chat_id,
            style=style.key,
            bytes_in=len(data),
            size_in="x".join(map(str, rendered.input_size)),
            size_out="x".join(map(str, rendered.output_size)),
            sent_as=sent_as,
            bytes_out=len(rendered.data),
            download_ms=round((downloaded - started) * 1000),
            queue_ms=round(done.waited_s * 1000),
            infer_ms=round(done.ran_s * 1000),
            send_ms=round((finished - computed) * 1000),
            total_ms=round((finished - started) * 1000),
        )

    async def _send(self, message: Message, rendered: Rendered, caption: str) -> str:
        """Send as photo, or as a file when asked (or when Telegram refuses the photo, e.g. extreme aspect ratios)."""
        if not rendered.as_file:
            try:
                await message.reply_photo(
                    InputFile(rendered.data, filename=rendered.filename),
                    caption=caption,
                    reply_parameters=_reply_to(message),
                )
                return "photo"
            except BadRequest as exc:
                log_event(logger, "photo_refused", level=logging.WARNING, chat=message.chat_id, error=str(exc))
        await message.reply_document(
            InputFile(rendered.data, filename=rendered.filename), caption=caption, reply_parameters=_reply_to(message)
        )
        return "document"

    async def _refuse(self, message: Message, reason: str, text: str) -> None:
        log_event(
            logger,
            "rejected",
            reason=reason,
            user=message.from_user.id if message.from_user else None,
            chat=message.chat_id,
        )
        await message.reply_text(text, reply_parameters=_reply_to(message))

    # ------------------------------------------------------------------ errors
    async def on_error(self, update: object, context: Context) -> None:
        """Log the failure and tell the user, so that no request goes unanswered even on a bug."""
        log_event(
            logger,
            "handler_failed",
            level=logging.ERROR,
            exc_info=context.error,
            update_id=getattr(update, "update_id", None),
        )
        if isinstance(update, Update):
            with contextlib.suppress(TelegramError):
                if update.callback_query:
                    await update.callback_query.answer("Something went wrong; please try again.")
                elif update.effective_message:
                    await update.effective_message.reply_text(
                        "Sorry, something went wrong with that. Please try again."
                    )


__all__ = [
    "COMMANDS",
    "CallbackQuery",
    "Rendered",
    "Style",
    "StyleBot",
    "StyleCatalog",
    "StylizerLike",
    "render",
]
