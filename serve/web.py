"""The web page: try every style in a browser (Gradio, torch-free).

``python -m serve web --models models/`` (or ``cyclegan web``) serves one page with three tabs:

* **Photo** -- upload a photo, pick a style, see input and output side by side, download the result
  (a lossless PNG at the size the model produced);
* **Several photos** -- a batch in, a gallery out (bad files are named, the rest are stylized);
* **Video** -- a short clip in, the stylized clip out (H.264, audio kept), with a progress bar.

It uses what the CLI and the bot use: :func:`serve.hub.resolve_models` finds the models (folders,
``.onnx`` files, ``hf://`` models), :class:`serve.stylizer.Stylizer` runs them,
:func:`cyclegan.contract.images.open_image` reads uploads with the same limits (pixel limit against bombs, every
mode converted, non-images refused) and :func:`serve.video.stylize_video` does videos. Every bad input
is answered in the page with a :class:`gradio.Error` that says why.

Concurrency is bounded like the bot's pool: every stylizing event shares one concurrency group of
``workers`` jobs, each with ``cpus // workers`` onnxruntime threads, and ``demo.queue(max_size=queue_size)``
admits at most that many waiting requests; beyond it the page says the queue is full.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from cyclegan.contract.card import GeneratorCard, style_titles
from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.files import OutputError, reason, safe_stem
from cyclegan.contract.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageInputError, open_image, save_image
from cyclegan.contract.runtime import available_cpus
from cyclegan.contract.video import VIDEO_EXTENSIONS
from serve.hub import resolve_models
from serve.stylizer import Stylizer
from serve.video import VideoInputError, stylize_video

logger = logging.getLogger("serve.web")

STYLIZE_GROUP = "stylize"  # one concurrency group for every event that runs a model
PREVIEW_LIMIT = 4  # upload previews at once (decoding only)
SERVER_STORAGE = "The server cannot store results right now (its disk is full or read-only); try again later."
CACHE_LIFETIME_S = 3600  # results and uploads are deleted an hour after they were made
THEME_FONT = ("ui-sans-serif", "system-ui", "sans-serif")  # system fonts: the page loads nothing from outside

CSS = """
.gradio-container { max-width: 1280px !important; margin: auto; }
#style-card { font-size: 0.92em; }
#input-preview img, #output-image img { object-fit: contain; }
"""


class WebSettingsError(ToolkitError, ValueError):
    """The page's settings are unusable; the message lists every problem."""


@dataclass(frozen=True)
class WebSettings:
    """What the page serves and its limits; validated once (:class:`WebSettingsError` listing every problem)."""

    models: tuple[str, ...] = ("models",)
    host: str = "127.0.0.1"
    port: int = 7860
    max_side: int | None = None  # None: each model's recommended side (its card); 0: keep the photo's size
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_upload_mb: float = 50.0
    max_video_seconds: float = 60.0
    workers: int = 1
    queue_size: int = 8

    def __post_init__(self) -> None:
        problems = []
        if not self.models:
            problems.append("no models given (--models FOLDER, FILE.onnx or hf://user/name/file.onnx)")
        if not 0 <= self.port <= 65535:
            problems.append(f"--port {self.port} must be between 0 and 65535")
        for name, value, least in (
            ("--max-pixels", self.max_pixels, 64 * 64),
            ("--workers", self.workers, 1),
            ("--queue-size", self.queue_size, 1),
        ):
            if value < least:
                problems.append(f"{name} {value} must be at least {least}")
        if self.max_side is not None and self.max_side < 0:
            problems.append(f"--max-side {self.max_side} must be 0 (keep the size) or positive")
        for name, number in (("--max-upload-mb", self.max_upload_mb), ("--max-video-seconds", self.max_video_seconds)):
            if not number > 0 or number == float("inf"):
                problems.append(f"{name} {number} must be a positive number")
        if problems:
            raise WebSettingsError("; ".join(problems))

    @property
    def threads_per_worker(self) -> int:
        """onnxruntime threads per job, so that all workers together use each CPU once."""
        return max(1, available_cpus() // self.workers)


@dataclass(frozen=True)
class Style:
    key: str  # the model's name (file name without .onnx), unique
    label: str  # what the picker shows
    stylizer: Stylizer


def describe(card: GeneratorCard, max_side: int | None) -> str:
    """One paragraph (Markdown) about a model, from its card."""
    parts = [f"**{card.source_domain} → {card.target_domain}**", card.architecture]
    if card.extra.get("imported_from"):
        parts.append(f"imported from {card.extra['imported_from']}")
    elif card.step:
        parts.append(f"trained {card.step:,} steps" + (" (EMA weights)" if card.ema else ""))
    if card.precision:
        parts.append(card.measured or card.precision)
    parts.append("full-size results" if max_side == 0 else f"results up to {max_side} px" if max_side else "")
    return " · ".join(p for p in parts if p)


def load_styles(settings: WebSettings) -> list[Style]:
    """A Stylizer per model the settings name (raises ModelSourceError / ModelLoadError with the reason)."""
    paths = resolve_models(settings.models)
    stylizers = [Stylizer(path, threads=settings.threads_per_worker, max_side=settings.max_side) for path in paths]
    labels = style_titles([(s.name, s.card) for s in stylizers], arrow="→")
    return [Style(s.name, label, s) for s, label in zip(stylizers, labels)]


def _results_folder() -> Path:
    """A fresh folder in Gradio's cache: files there are served as they are and deleted with the cache."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / "cyclegan" / uuid.uuid4().hex
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logger.error("cannot create %s: %s", folder, reason(exc))
        raise refuse(SERVER_STORAGE, "Server problem") from None
    return folder


def refuse(message: str, title: str) -> gr.Error:
    """The message the page shows for bad input (logged as one line, without a traceback)."""
    logger.info("refused: %s", message)
    return gr.Error(message, title=title, print_exception=False)


def _name(path: str | os.PathLike[str]) -> str:
    return Path(path).name


def result_name(upload: str | os.PathLike[str], style: Style, suffix: str) -> str:
    """``holiday_monet.png``: the upload's name (readable and safe, any script), the style's, the result's format."""
    return f"{safe_stem(Path(upload).stem, 'image')}_{style.key}{suffix}"


def _save(image: Image.Image, path: Path) -> Path:
    """Save a result; a full or read-only cache on the server is a message, not a stack trace."""
    try:
        return save_image(image, path)
    except OutputError as exc:
        logger.error("cannot save a result: %s", exc)
        raise refuse(SERVER_STORAGE, "Server problem") from None


class StylePage:
    """The page's handlers, bound to the styles and settings (kept apart from the layout for tests)."""

    def __init__(self, styles: Sequence[Style], settings: WebSettings) -> None:
        if not styles:
            raise ValueError("the page needs at least one style")
        self.styles = {style.key: style for style in styles}
        self.settings = settings

    def style(self, key: str | None) -> Style:
        style = self.styles.get(key or "")
        if style is None:
            raise refuse("Pick a style first.", title="No style")
        return style

    def card_text(self, key: str | None) -> str:
        style = self.styles.get(key or "")
        return describe(style.stylizer.card, style.stylizer.max_side) if style else ""

    def read(self, path: str) -> Image.Image:
        """An uploaded image, read with the serving limits; :class:`ImageInputError` names the uploaded file."""
        try:
            with open(path, "rb") as fh:  # a file object, so messages name the upload and not Gradio's cache path
                return open_image(fh, max_pixels=self.settings.max_pixels)
        except ImageInputError as exc:
            raise ImageInputError(f"{_name(path)}: {exc}") from None

    def open(self, path: str | None) -> Image.Image:
        """:meth:`read`, with bad input turned into a message in the page."""
        if not path:
            raise refuse("Upload a photo first.", title="No photo")
        try:
            return self.read(path)
        except ImageInputError as exc:
            raise refuse(str(exc), title="Cannot use this file") from None

    # -- photos ---------------------------------------------------------------------------------------

    def preview(self, path: str | None, key: str | None) -> Image.Image | None:
        """The upload as the model will see it (upright, converted, resized), or a message if unusable."""
        if not path:
            return None
        image = self.open(path)
        style = self.styles.get(key or "")
        return style.stylizer.prepare(image) if style else image

    def stylize_photo(self, path: str | None, key: str | None) -> tuple[Image.Image, gr.Image]:
        """(input as the model saw it, the lossless result, labelled with its size)."""
        style = self.style(key)
        image = self.open(path)
        result = style.stylizer.stylize(image)
        assert path is not None
        out = _save(result, _results_folder() / result_name(path, style, ".png"))
        label = f"Stylized · {result.width} × {result.height} px"
        return style.stylizer.prepare(image), gr.Image(value=str(out), label=label)

    def stylize_photos(self, paths: Sequence[str] | None, key: str | None) -> list[tuple[str, str]]:
        """Every usable photo stylized (gallery items: path, caption); unusable ones are named in a warning."""
        style = self.style(key)
        if not paths:
            raise refuse("Upload one or more photos first.", title="No photos")
        folder = _results_folder()
        results, failed = [], []
        for path in paths:
            try:
                image = self.read(path)
            except ImageInputError as exc:
                failed.append(str(exc))
                continue
            out = _save(style.stylizer.stylize(image), folder / result_name(path, style, ".png"))
            results.append((str(out), _name(path)))
        if not results:
            raise refuse("None of the files could be used. " + " ".join(failed), title="Cannot use these files")
        if failed:
            gr.Warning(f"{len(failed)} of {len(paths)} files skipped. " + " ".join(failed), title="Some files skipped")
        return results

    # -- video ----------------------------------------------------------------------------------------

    def stylize_clip(self, path: str | None, key: str | None, progress=None) -> str:
        style = self.style(key)
        if not path:
            raise refuse("Upload a video first.", title="No video")
        seconds = video_seconds(path)
        if seconds is not None and seconds > self.settings.max_video_seconds:
            raise refuse(
                f"{_name(path)} is {seconds:.0f} s long; this page takes clips up to "
                f"{self.settings.max_video_seconds:g} s (use `cyclegan stylize` for longer videos)",
                title="Video too long",
            )
        out = _results_folder() / result_name(path, style, ".mp4")
        if progress is not None:
            progress(0, desc="Stylizing frames")
        try:
            stylize_video(style.stylizer, path, out, max_side=style.stylizer.max_side or None, preset="veryfast")
        except VideoInputError as exc:
            message = f"{_name(path)}: {exc}".replace(str(path), _name(path))
            raise refuse(message, title="Cannot use this video") from None
        return str(out)


def video_seconds(path: str | os.PathLike[str]) -> float | None:
    """The duration a container states (None when it states none); unreadable files are refused."""
    import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.video:
                raise refuse(f"{_name(path)} has no video stream", title="Cannot use this video")
            if container.duration is not None:
                return container.duration / av.time_base
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return None
    except av.error.FFmpegError as exc:
        raise refuse(f"{_name(path)} is not a video this page can read: {exc}", title="Cannot use this video") from None


def image_file_types() -> list[str]:
    """Extensions the upload boxes accept (the browser filters by them): the toolkit's image extensions."""
    return sorted(IMAGE_EXTENSIONS)


def build_page(styles: Sequence[Style], settings: WebSettings) -> gr.Blocks:
    """The Gradio Blocks of the page (not launched)."""
    page = StylePage(styles, settings)
    choices = [(style.label, style.key) for style in styles]
    first = styles[0].key
    limit = settings.workers
    upload_types = image_file_types()

    with gr.Blocks(
        title="CycleGAN styles",
        delete_cache=(CACHE_LIFETIME_S // 4, CACHE_LIFETIME_S),
        analytics_enabled=False,
        fill_width=True,
    ) as demo:
        gr.Markdown(
            "# CycleGAN styles\nUpload a photo, pick a style, get it back stylized. "
            f"{len(styles)} style{'s' if len(styles) != 1 else ''} from this toolkit's exported models; "
            "nothing leaves this server."
        )
        with gr.Row(equal_height=False):
            style = gr.Dropdown(choices, value=first, label="Style", elem_id="style", scale=2)
            card = gr.Markdown(page.card_text(first), elem_id="style-card")
        style.change(page.card_text, style, card, queue=False)

        with gr.Tabs():
            with gr.Tab("Photo", id="photo"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=240):
                        photo = gr.File(
                            label="Photo", file_types=upload_types, type="filepath", elem_id="photo-input", height=140
                        )
                        run_photo = gr.Button("Stylize", variant="primary", elem_id="stylize-button")
                        gr.Markdown(
                            f"JPEG, PNG, WebP, TIFF, ... up to {settings.max_pixels / 1e6:g} megapixels and "
                            f"{settings.max_upload_mb:g} MB. The result downloads as a lossless PNG.",
                            elem_classes="hint",
                        )
                    with gr.Column(scale=3):
                        with gr.Row(equal_height=True):
                            before = gr.Image(
                                label="Input",
                                type="pil",
                                interactive=False,
                                elem_id="input-preview",
                                height=440,
                                buttons=["fullscreen"],
                            )
                            after = gr.Image(
                                label="Stylized",
                                type="filepath",
                                format="png",
                                interactive=False,
                                elem_id="output-image",
                                height=440,
                                buttons=["download", "fullscreen"],
                            )
                photo.upload(
                    page.preview,
                    [photo, style],
                    before,
                    concurrency_limit=PREVIEW_LIMIT,
                    concurrency_id="preview",
                    show_progress="minimal",
                )
                photo.clear(lambda: (None, None), None, [before, after], queue=False)
                run_photo.click(
                    page.stylize_photo,
                    [photo, style],
                    [before, after],
                    concurrency_limit=limit,
                    concurrency_id=STYLIZE_GROUP,
                )

            with gr.Tab("Several photos", id="photos"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=240):
                        photos = gr.File(
                            label="Photos",
                            file_count="multiple",
                            file_types=upload_types,
                            type="filepath",
                            elem_id="photos-input",
                        )
                        run_photos = gr.Button("Stylize all", variant="primary", elem_id="stylize-all-button")
                    with gr.Column(scale=3):
                        gallery = gr.Gallery(
                            label="Stylized",
                            format="png",
                            columns=3,
                            height=520,
                            preview=False,
                            object_fit="contain",
                            elem_id="photos-output",
                            buttons=["download", "fullscreen"],
                        )
                run_photos.click(
                    page.stylize_photos,
                    [photos, style],
                    gallery,
                    concurrency_limit=limit,
                    concurrency_id=STYLIZE_GROUP,
                )

            with gr.Tab("Video", id="video"):
                with gr.Row():
                    with gr.Column():
                        clip = gr.Video(label="Video", sources=["upload"], elem_id="video-input", height=400)
                        run_clip = gr.Button("Stylize video", variant="primary", elem_id="stylize-video-button")
                        gr.Markdown(
                            f"Clips up to {settings.max_video_seconds:g} s ({', '.join(sorted(VIDEO_EXTENSIONS)[:6])}, "
                            "...); the sound is kept.",
                            elem_classes="hint",
                        )
                    with gr.Column():
                        clip_out = gr.Video(label="Stylized", interactive=False, elem_id="video-output", height=400)

                # Gradio's convention: a gr.Progress default marks the progress parameter (tqdm bars feed it).
                def stylize_clip(
                    path: str | None,
                    key: str | None,
                    progress=gr.Progress(track_tqdm=True),  # noqa: B008
                ) -> str:
                    return page.stylize_clip(path, key, progress)

                run_clip.click(
                    stylize_clip,
                    [clip, style],
                    clip_out,
                    concurrency_limit=limit,
                    concurrency_id=STYLIZE_GROUP,
                )
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=limit)
    return demo


def theme() -> gr.themes.Base:
    return gr.themes.Soft(font=list(THEME_FONT), font_mono=["ui-monospace", "monospace"])


def launch(demo: gr.Blocks, settings: WebSettings, *, block: bool = True) -> None:
    """Serve the page on ``settings.host:settings.port``; ``block=False`` returns once it is up."""
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        max_file_size=int(settings.max_upload_mb * 1024 * 1024),
        prevent_thread_lock=not block,
        show_error=False,
        ssr_mode=False,
        footer_links=[],
        run_history=False,
        theme=theme(),
        css=CSS,
        quiet=not block,
    )


def run_web(settings: WebSettings) -> None:
    """Load the models and serve until interrupted (``cyclegan web``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    styles = load_styles(settings)
    launch(build_page(styles, settings), settings)
