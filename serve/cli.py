"""``python -m serve`` / ``cyclegan-serve``: stylize files with an ONNX model, or run the Telegram bot.

``cyclegan stylize`` and ``cyclegan bot`` are these same click commands (imported lazily by
:mod:`cyclegan.cli`). Nothing here imports torch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from tqdm import tqdm

from cyclegan.contract.errors import ToolkitError, reports_errors
from cyclegan.contract.files import OutputError, ensure_writable_dir, is_within
from cyclegan.contract.images import (
    DEFAULT_MAX_PIXELS,
    ImageInputError,
    is_image_name,
    open_image,
    output_format,
    save_image,
)
from cyclegan.contract.video import is_video_name
from serve.video import (
    DEFAULT_CRF,
    DEFAULT_PRESET,
    DEFAULT_STABLE,
    DEFAULT_VIDEO_MAX_SIDE,
    X264_PRESETS,
    VideoInputError,
    output_name,
    stylize_video,
)

if TYPE_CHECKING:
    from serve.stylizer import Stylizer

CONTEXT = {"help_option_names": ["-h", "--help"]}


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    kind: str  # "image" | "video" | "unknown" (explicit file with an unknown extension: probed)


@dataclass
class Plan:
    jobs: list[Job]
    problems: list[str]  # "path: why" for inputs that cannot be planned (missing, colliding outputs)
    ignored: int = 0  # files in folders that are neither images nor videos


def _kind(path: Path) -> str | None:
    if is_video_name(path):
        return "video"
    if is_image_name(path):
        return "image"
    return None


def _image_name(rel: Path, fmt: str) -> Path:
    if fmt == "jpg":
        return rel.with_suffix(".jpg")
    if fmt == "png":
        return rel.with_suffix(".png")
    try:
        output_format(rel)
        return rel
    except ValueError:  # a format Pillow reads but cannot write: fall back to lossless PNG
        return rel.with_suffix(".png")


def _output(rel: Path, kind: str, fmt: str) -> Path:
    if kind == "video":
        return rel.with_name(output_name(rel))
    return _image_name(rel, fmt)


def _walk(folder: Path, recursive: bool, skip: Path | None) -> Iterator[Path]:
    """Files under ``folder`` (hidden ones left out), except those under ``skip`` (an --out inside the folder)."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    for path in sorted(pattern):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts):
            if skip is None or not is_within(path.resolve(), skip):
                yield path


class PlanError(ToolkitError):
    """The inputs and --out cannot be planned without writing over an input; nothing was done."""


def plan_jobs(inputs: Sequence[Path], out: Path, *, fmt: str = "keep", recursive: bool = True) -> Plan:
    """Map inputs to output paths: files to ``OUT/name``, folder contents to ``OUT/relative/path``.

    An output is never one of the inputs: a folder that is --out itself, or an output path that is an input
    file, raise :class:`PlanError` before anything is written. Files inside an --out that lies within an
    input folder are not read (they are outputs).
    """
    plan = Plan([], [])
    taken: dict[Path, Path] = {}
    out_resolved = out.resolve()

    sources: set[Path] = set()  # every input file, also those whose output collides

    def add(src: Path, rel: Path, kind: str) -> None:
        sources.add(src.resolve())
        dst = out / _output(rel, kind, fmt)
        if dst in taken:
            plan.problems.append(f"{src}: its output {dst} is also the output of {taken[dst]}; rename one")
            return
        taken[dst] = src
        plan.jobs.append(Job(src, dst, kind))

    for item in inputs:
        if item.is_dir():
            if item.resolve() == out_resolved:
                raise PlanError(
                    f"{item} is the --out folder itself: its files would be replaced by their stylized versions; "
                    "choose another --out (nothing was written)"
                )
            inner_out = out_resolved if is_within(out_resolved, item.resolve()) else None
            for path in _walk(item, recursive, inner_out):
                kind = _kind(path)
                if kind is None:
                    plan.ignored += 1
                else:
                    add(path, path.relative_to(item), kind)
        elif item.is_file():
            add(item, Path(item.name), _kind(item) or "unknown")
        else:
            plan.problems.append(f"{item}: no such file or folder")
    for job in plan.jobs:
        outputs = [job.dst] if job.kind != "unknown" else [job.dst, job.dst.with_name(output_name(job.dst))]
        clash = next((dst for dst in outputs if dst.resolve() in sources), None)
        if clash is not None:
            raise PlanError(
                f"{job.src}: its output {clash} would be written over "
                f"{'the input itself' if clash.resolve() == job.src.resolve() else 'another input'}; "
                "choose another --out (nothing was written)"
            )
    return plan


def _stylize_image(stylizer: Stylizer, job: Job, max_pixels: int) -> None:
    image = open_image(job.src, max_pixels=max_pixels)
    save_image(stylizer.stylize(image), job.dst)


def run_job(
    stylizer: Stylizer,
    job: Job,
    *,
    max_side: int | None,
    max_pixels: int,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
    progress: bool = False,
    stable: bool = DEFAULT_STABLE,
) -> str:
    """Stylize one input; returns what it was ("image" or "video"); raises on bad input.

    Videos: ``max_side`` None means :data:`~serve.video.DEFAULT_VIDEO_MAX_SIDE`, 0 keeps the frame size.
    """
    video_side = DEFAULT_VIDEO_MAX_SIDE if max_side is None else max_side
    video = {"max_side": video_side, "max_pixels": max_pixels, "stable": stable, "crf": crf, "preset": preset}
    if job.kind == "image":
        _stylize_image(stylizer, job, max_pixels)
        return "image"
    if job.kind == "video":
        stylize_video(stylizer, job.src, job.dst, progress=progress, **video)  # type: ignore[arg-type]
        return "video"
    try:  # unknown extension: an image if Pillow can read it, else a video if FFmpeg can
        _stylize_image(stylizer, job, max_pixels)  # planned with a writable image extension
        return "image"
    except ImageInputError as image_error:
        try:
            dst = job.dst.with_name(output_name(job.dst))
            stylize_video(stylizer, job.src, dst, progress=progress, **video)  # type: ignore[arg-type]
            return "video"
        except VideoInputError:
            raise ImageInputError(f"neither an image nor a video: {image_error}") from None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@click.group(context_settings=CONTEXT)
def cli() -> None:
    """Torch-free serving: stylize images, folders and videos with an ONNX model, or run the Telegram bot."""


@cli.command("stylize", context_settings=CONTEXT)
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created). Folder inputs keep their relative paths inside it.",
)
@click.option(
    "--max-side",
    type=click.IntRange(min=0),
    default=None,
    help=f"Longest output side. Images default to the model's recommended max side, videos to "
    f"{DEFAULT_VIDEO_MAX_SIDE}; 0 keeps the size (large pictures then run in seam-free tiles).",
)
@click.option(
    "--tile",
    type=click.IntRange(min=0),
    default=None,
    help="Tile side in pixels: pictures with a longer side run window by window with the whole picture's "
    "normalisation statistics (memory bounded by the tile). Default: pictures over 1024x1024 pixels, in 1024 px "
    "tiles; 0 never tiles.",
)
@click.option(
    "--stable/--no-stable",
    default=DEFAULT_STABLE,
    show_default=True,
    help="Videos: keep the previous stylized frame where the input did not change (within a few levels of the new "
    "one; reset at scene cuts): less flicker. --no-stable stylizes every frame on its own.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    default=None,
    help="onnxruntime threads (default: the CPUs available to this process).",
)
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["keep", "jpg", "png"]),
    default="keep",
    show_default=True,
    help="Image output format; videos are always H.264 (.mp4 unless the input is .mov/.mkv).",
)
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Descend into sub-folders.")
@click.option(
    "--crf",
    type=click.IntRange(0, 51),
    default=DEFAULT_CRF,
    show_default=True,
    help="H.264 quality for videos (lower is better and larger).",
)
@click.option(
    "--preset",
    type=click.Choice(X264_PRESETS),
    default=DEFAULT_PRESET,
    show_default=True,
    help="x264 speed preset for videos (faster presets give larger files).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images, and videos with frames, of more pixels than this (decompression-bomb guard).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@reports_errors
def stylize(
    model: str,
    inputs: tuple[Path, ...],
    out: Path,
    max_side: int | None,
    tile: int | None,
    stable: bool,
    threads: int | None,
    overwrite: bool,
    fmt: str,
    recursive: bool,
    crf: int,
    preset: str,
    max_pixels: int,
    quiet: bool,
) -> None:
    """Stylize images, folders and videos in INPUTS with the ONNX MODEL into --out.

    MODEL is an .onnx file or hf://user/name/file.onnx (downloaded once into the Hugging Face cache).
    Bad files are reported and skipped; the exit code is 1 if any input failed.
    """
    from serve.hub import resolve_model
    from serve.stylizer import Stylizer  # onnxruntime loads only for this command

    plan = plan_jobs(inputs, out, fmt=fmt, recursive=recursive)  # before the model loads: fast errors
    stylizer = Stylizer(
        resolve_model(model),
        threads=threads,
        max_side=max_side,
        tile=tile,
        note=lambda message: tqdm.write(f"note: {message}", file=sys.stderr),
    )
    if stylizer.card.measured and not quiet:  # e.g. int8: PSNR vs fp32 and speed, measured by the export
        click.echo(f"model {stylizer.name}: {stylizer.card.measured}", err=True)
    failed = list(plan.problems)
    for problem in plan.problems:
        click.echo(f"failed: {problem}", err=True)
    done = {"image": 0, "video": 0}
    skipped = 0
    stopped: OutputError | None = None
    ensure_writable_dir(out, "--out")
    bar = tqdm(plan.jobs, unit="file", desc="stylize", disable=quiet or len(plan.jobs) < 2)
    for index, job in enumerate(bar):
        if job.dst.exists() and not overwrite:
            skipped += 1
            continue
        try:
            kind = run_job(
                stylizer,
                job,
                max_side=max_side,
                max_pixels=max_pixels,
                crf=crf,
                preset=preset,
                progress=not quiet,
                stable=stable,
            )
            done[kind] += 1
        except OutputError as exc:
            failed.append(f"{job.src}: {exc}")
            tqdm.write(f"failed: {job.src}: {exc}", file=sys.stderr)
            if exc.disk_wide:  # every further file would fail the same way
                stopped, not_started = exc, len(plan.jobs) - index - 1
                break
        except ToolkitError as exc:
            failed.append(f"{job.src}: {exc}")
            tqdm.write(f"failed: {job.src}: {exc}", file=sys.stderr)
        except Exception as exc:  # one bad file must not stop a folder run; say what it was
            failed.append(f"{job.src}: {type(exc).__name__}: {exc}")
            tqdm.write(f"failed: {job.src}: {type(exc).__name__}: {exc}", file=sys.stderr)
    bar.close()
    parts = [f"stylized {_plural(done['image'], 'image')} and {_plural(done['video'], 'video')} into {out}"]
    if skipped:
        parts.append(f"{skipped} skipped (output exists; --overwrite redoes them)")
    if plan.ignored:
        parts.append(f"{plan.ignored} ignored (not images or videos)")
    parts.append(f"{len(failed)} failed")
    if stopped is not None:
        parts.append(f"stopped early, {_plural(not_started, 'file')} not started ({stopped})")
    if not plan.jobs and not failed:
        parts.append("nothing to do: the inputs hold no images or videos")
    click.echo("; ".join(parts))
    if failed:
        raise SystemExit(1)
    if not plan.jobs:
        raise SystemExit(2)


@cli.command("bot", context_settings=CONTEXT)
@click.option(
    "--healthcheck",
    is_flag=True,
    help="Exit 0 if a running bot's heartbeat file is fresh, else 1 (for container HEALTHCHECKs).",
)
def bot(healthcheck: bool) -> None:
    """Run the Telegram bot with every *.onnx model in BOT_MODELS_DIR.

    Configured by BOT_* environment variables (BOT_TOKEN, BOT_MODELS_DIR, ...; see serve.bot_config).
    """
    from serve import bot as bot_module  # python-telegram-bot is only needed here

    if healthcheck:
        healthy, why = bot_module.healthcheck()
        click.echo(why)
        raise SystemExit(0 if healthy else 1)
    bot_module.run_bot_from_env()


@cli.command("web", context_settings=CONTEXT)
@click.option(
    "--models",
    "-m",
    "models",
    multiple=True,
    default=("models",),
    show_default=True,
    help="A folder of exported *.onnx models, one .onnx file or hf://user/name/file.onnx; repeat for several.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True)
@click.option(
    "--max-side",
    type=click.IntRange(min=0),
    default=None,
    help="Longest side of results (default: each model's recommended side; 0 keeps the photo's size).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse images with more pixels than this (decompression-bomb guard).",
)
@click.option("--max-upload-mb", type=float, default=50.0, show_default=True, help="Largest upload, in MB.")
@click.option("--max-video-seconds", type=float, default=60.0, show_default=True, help="Longest video accepted.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Jobs running at once.")
@click.option(
    "--queue-size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Requests waiting at most; beyond it the page says the queue is full.",
)
@reports_errors
def web(
    models: tuple[str, ...],
    host: str,
    port: int,
    max_side: int | None,
    max_pixels: int,
    max_upload_mb: float,
    max_video_seconds: float,
    workers: int,
    queue_size: int,
) -> None:
    """Serve a web page to try the styles in a browser (Gradio; needs the `web` extra)."""
    try:
        from serve import web as web_module  # gradio: only for this command
    except ImportError as exc:
        raise ToolkitError(f"the web page needs gradio ({exc}): pip install 'cyclegan-toolkit[web]'") from None

    settings = web_module.WebSettings(
        models=models,
        host=host,
        port=port,
        max_side=max_side,
        max_pixels=max_pixels,
        max_upload_mb=max_upload_mb,
        max_video_seconds=max_video_seconds,
        workers=workers,
        queue_size=queue_size,
    )
    styles = web_module.load_styles(settings)
    click.echo(f"serving {len(styles)} style(s) on http://{host}:{port}/ (Ctrl+C stops)")
    web_module.launch(web_module.build_page(styles, settings), settings)
