"""``cyclegan frames`` and ``cyclegan images``: thin click wrappers around cyclegan.frames.pipeline."""

from __future__ import annotations

import math
import sys

import click

from cyclegan.contract.errors import reports_errors
from cyclegan.contract.images import DEFAULT_MAX_PIXELS
from cyclegan.frames.pipeline import FrameOptions, Summary, build_from_videos, import_images
from cyclegan.frames.quality import QualityFilter
from cyclegan.frames.video import Sampling

_DOMAIN = click.Choice(["A", "B"])


class _Finite(click.FloatRange):
    """A number option that refuses nan and inf (a NaN threshold would switch its rule off without a word)."""

    name = "number"

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201 - click's signature
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _off(value: float | None) -> float | None:
    """Negative thresholds switch a rule off from the command line."""
    return None if value is None or value < 0 else value


def _report(summary: Summary) -> None:
    click.echo(summary.format())
    if not summary.ok:
        sys.exit(1)


def _common(func):
    options = [
        click.option(
            "--out", "-o", required=True, type=click.Path(file_okay=False), help="Dataset folder (created if needed)."
        ),
        click.option("--domain", "-d", required=True, type=_DOMAIN, help="Write into trainA/testA or trainB/testB."),
        click.option("--name", default=None, help='Human name of the domain for dataset.json, e.g. "cartoon".'),
        click.option("--resize", type=click.IntRange(min=1), default=None, help="Scale so the shorter side is N px."),
        click.option("--crop", type=click.IntRange(min=1), default=None, help="Then crop an N x N square."),
        click.option(
            "--crop-mode",
            type=click.Choice(["center", "random"]),
            default="center",
            show_default=True,
            help="Where the square is cut (random: a fixed position per file name).",
        ),
        click.option("--format", "fmt", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True),
        click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True),
        click.option(
            "--test-ratio",
            type=_Finite(0.0, 1.0, max_open=True),
            default=0.0,
            show_default=True,
            help="Share of files put in test<domain> (stable: decided by a hash of the file name).",
        ),
        click.option(
            "--dedup",
            type=click.Choice(["off", "consecutive", "global"]),
            default="global",
            show_default=True,
            help="Drop near-duplicates of the previous kept frame, or of any frame in the domain.",
        ),
        click.option(
            "--hash-distance",
            type=click.IntRange(0, 64),
            default=4,
            show_default=True,
            help="dHash Hamming distance (of 64 bits) at or below which two frames are duplicates.",
        ),
        click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _quality(max_dark, min_bright, min_std, min_sharpness) -> QualityFilter:
    return QualityFilter(_off(max_dark), _off(min_bright), _off(min_std), _off(min_sharpness))


@click.command("frames")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@_common
@click.option(
    "--every-seconds",
    type=_Finite(min=0, min_open=True),
    default=None,
    help="One frame every S seconds (default 1 s when no sampling option is given).",
)
@click.option("--every-frames", type=click.IntRange(min=1), default=None, help="One frame every N decoded frames.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="N frames spread evenly over [start, end).")
@click.option("--start", type=_Finite(min=0), default=0.0, show_default=True, help="Skip the first S seconds (intros).")
@click.option("--end", type=_Finite(min=0, min_open=True), default=None, help="Stop at S seconds (credits).")
@click.option(
    "--max-dark", type=_Finite(), default=16.0, show_default=True, help="Drop frames with mean gray <= this (-1: off)."
)
@click.option(
    "--min-bright",
    type=_Finite(),
    default=240.0,
    show_default=True,
    help="Drop frames with mean gray >= this (-1: off).",
)
@click.option(
    "--min-std", type=_Finite(), default=8.0, show_default=True, help="Drop frames with gray std below this (-1: off)."
)
@click.option(
    "--min-sharpness",
    type=_Finite(),
    default=25.0,
    show_default=True,
    help="Drop frames whose Laplacian variance (gray, longer side 256 px) is below this (-1: off).",
)
@click.option("--letterbox/--no-letterbox", default=False, show_default=True, help="Crop black bars.")
@click.option(
    "--keyframes-only",
    is_flag=True,
    help="Decode keyframes only (fastest for sparse sampling); each sample is the first keyframe at or "
    "after its time, so times are only as exact as the keyframe spacing.",
)
@click.option("--force", is_flag=True, help="Redo videos already in the dataset.")
@reports_errors
def frames(
    inputs,
    out,
    domain,
    name,
    resize,
    crop,
    crop_mode,
    fmt,
    jpeg_quality,
    test_ratio,
    dedup,
    hash_distance,
    progress,
    every_seconds,
    every_frames,
    count,
    start,
    end,
    max_dark,
    min_bright,
    min_std,
    min_sharpness,
    letterbox,
    keyframes_only,
    force,
) -> None:
    """Build a style dataset domain from VIDEO files or folders of videos."""
    if sum(x is not None for x in (every_seconds, every_frames, count)) > 1:
        raise click.UsageError("choose one of --every-seconds, --every-frames and --count")
    if every_frames is None and count is None and every_seconds is None:
        every_seconds = 1.0
    try:
        sampling = Sampling(every_seconds, every_frames, count, start, end)
        options = FrameOptions(
            sampling=sampling,
            quality=_quality(max_dark, min_bright, min_std, min_sharpness),
            dedup=dedup,
            hash_distance=hash_distance,
            letterbox=letterbox,
            resize=resize,
            crop=crop,
            crop_mode=crop_mode,
            fmt=fmt,
            jpeg_quality=jpeg_quality,
            test_ratio=test_ratio,
            keyframes_only=keyframes_only,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    log = lambda message: click.echo(message, err=True)  # noqa: E731
    _report(build_from_videos(inputs, out, domain, options, name=name, force=force, progress=progress, log=log))


@click.command("images")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@_common
@click.option(
    "--max-dark", type=_Finite(), default=-1, show_default=True, help="Drop images with mean gray <= this (-1: off)."
)
@click.option(
    "--min-bright", type=_Finite(), default=-1, show_default=True, help="Drop images with mean gray >= this (-1: off)."
)
@click.option(
    "--min-std", type=_Finite(), default=-1, show_default=True, help="Drop images with gray std below this (-1: off)."
)
@click.option(
    "--min-sharpness", type=_Finite(), default=-1, show_default=True, help="Drop images less sharp than this (-1: off)."
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Skip images with more pixels than this (decompression-bomb guard; raise it for huge scans).",
)
@reports_errors
def images(
    inputs,
    out,
    domain,
    name,
    resize,
    crop,
    crop_mode,
    fmt,
    jpeg_quality,
    test_ratio,
    dedup,
    hash_distance,
    progress,
    max_dark,
    min_bright,
    min_std,
    min_sharpness,
    max_pixels,
) -> None:
    """Import photos (files or folders, recursive) into a dataset domain."""
    try:
        options = FrameOptions(
            quality=_quality(max_dark, min_bright, min_std, min_sharpness),
            dedup=dedup,
            hash_distance=hash_distance,
            resize=resize,
            crop=crop,
            crop_mode=crop_mode,
            fmt=fmt,
            jpeg_quality=jpeg_quality,
            test_ratio=test_ratio,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    log = lambda message: click.echo(message, err=True)  # noqa: E731
    _report(import_images(inputs, out, domain, options, name=name, progress=progress, log=log, max_pixels=max_pixels))
