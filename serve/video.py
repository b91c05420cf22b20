"""Stylize a video frame by frame with PyAV: same timestamps and frame rate, H.264 out, audio kept.

* Video: decoded (colours read per the stream's tags; untagged HD as BT.709, SD as BT.601), turned
  upright (display-matrix rotation applied to the pixels, so the output needs no rotation tag),
  scaled to ``max_side`` if given, forced to even width/height (yuv420p needs them), stylized in
  small batches and encoded with libx264 (yuv420p, ``crf``, tagged BT.709 limited range). Input
  timestamps are passed through in the input stream's time base, so the frame rate -- constant or
  variable -- is kept.
* Audio: the first audio stream is copied packet for packet when the output container accepts its
  codec (checked by writing a header in memory first); otherwise it is transcoded to AAC.
* The output appears atomically: it is written to ``NAME.partial`` and renamed when complete.
* Size: frames are scaled to ``max_side`` (default :data:`DEFAULT_VIDEO_MAX_SIDE`; 0 keeps the size, large
  frames then run in tiles), and videos whose frames hold more than ``max_pixels`` are refused before decoding.
* ``stable`` (default on, :data:`DEFAULT_STABLE`): each stylized frame goes through a
  :class:`serve.temporal.TemporalStabiliser`: where the input did not change since the previous frame, the
  previous output is kept while it stays within a few levels of the new one; where it changed, the new
  stylized frame shows; scene cuts start afresh. Works for every generator; ``stable=False`` (``--no-stable``)
  writes the frame-by-frame stylization.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
from tqdm import tqdm

from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.images import DEFAULT_MAX_PIXELS
from cyclegan.contract.sizes import fit_size
from cyclegan.contract.video import BT709, MPEG_RANGE, UNSPECIFIED, untagged_colorspace

if TYPE_CHECKING:  # onnxruntime stays unloaded until a model is (keeps `bot --healthcheck` light)
    from serve.stylizer import Stylizer

# Output containers that hold H.264; any other input extension is written as .mp4.
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"
DEFAULT_VIDEO_MAX_SIDE = 1280
# On by default: on the benchmark's static-camera clips (benchmarks/large.py, demo model) the stabiliser removed
# 58% of the flicker of a noisy clip and 37% of a noise-free one, every frame >= 35 dB of frame-by-frame, for ~2%
# more time.
DEFAULT_STABLE = True
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


class VideoInputError(ToolkitError, ValueError):
    """The input cannot be read as a video (not a video, no video stream, corrupt); the message says which."""


@dataclass(frozen=True)
class VideoResult:
    path: Path
    frames: int
    fps: Fraction
    size: tuple[int, int]  # output (width, height)
    audio: str  # "copied", "transcoded to aac" or "none"
    stable: bool = False  # frames went through the temporal stabiliser
    cuts: int = 0  # scene cuts seen (stable mode)


def output_name(path: str | Path) -> str:
    """The output file name for an input video: same name, ``.mp4`` unless the container holds H.264."""
    path = Path(path)
    return path.name if path.suffix.lower() in OUTPUT_FORMATS else path.stem + ".mp4"


def _even(n: int) -> int:
    return max(2, n - n % 2)


def open_video(src: str | Path) -> av.container.InputContainer:
    """Open a video for reading; undecodable metadata strings are replaced, not fatal."""
    return av.open(str(src), metadata_errors="replace")


def _probe_rotation(src: Path, max_pixels: int | None = None) -> int:
    """Counter-clockwise degrees to turn decoded frames upright (from the first frame's display matrix)."""
    with open_video(src) as container:
        if not container.streams.video:
            raise VideoInputError(f"{src} has no video stream (an audio-only file?)")
        context = container.streams.video[0].codec_context
        if max_pixels and (context.width or 0) * (context.height or 0) > max_pixels:
            raise VideoInputError(
                f"{src}: frames of {context.width}x{context.height} ({context.width * context.height / 1e6:.1f} MP) "
                f"are over the limit of {max_pixels / 1e6:.1f} MP per frame (--max-pixels)"
            )
        for frame in container.decode(container.streams.video[0]):
            return int(round(frame.rotation or 0)) % 360
    raise VideoInputError(f"{src} has a video stream but no decodable frame (empty or corrupt)")


def _can_copy(stream: av.audio.stream.AudioStream, container_format: str) -> bool:
    """Does ``container_format`` accept ``stream``'s codec as is? Decided by writing a header in memory."""
    try:
        with av.open(io.BytesIO(), "w", format=container_format) as probe:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError):
        return False


def stylize_video(
    stylizer: Stylizer,
    src: str | Path,
    dst: str | Path,
    *,
    max_side: int | None = DEFAULT_VIDEO_MAX_SIDE,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    stable: bool = DEFAULT_STABLE,
    crf: int = DEFAULT_CRF,
    preset: str = DEFAULT_PRESET,
    batch_size: int = 4,
    progress: bool = True,
) -> VideoResult:
    """Stylize ``src`` into ``dst`` (.mp4/.mov/.mkv); ``max_side`` None or 0 keeps the frame size; frames of
    more than ``max_pixels`` pixels are refused (:class:`VideoInputError`); ``stable`` stabilises in time."""
    if preset not in X264_PRESETS:
        raise ValueError(f"unknown x264 preset {preset!r}: use one of {', '.join(X264_PRESETS)}")
    src, dst = Path(src), Path(dst)
    container_format = OUTPUT_FORMATS.get(dst.suffix.lower())
    if container_format is None:
        raise ValueError(f"cannot write H.264 video to {dst.name}: use .mp4, .mov or .mkv")
    if not src.is_file():
        raise VideoInputError(f"no such file: {src}")
    try:
        rotation = _probe_rotation(src, max_pixels)
        source = open_video(src)
    except av.error.FFmpegError as exc:
        raise VideoInputError(f"cannot read {src} as a video: {exc}") from None

    partial = dst.with_name(dst.name + ".partial")
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with source:
            result = _transcode(
                stylizer,
                source,
                src,
                partial,
                container_format,
                rotation=rotation,
                max_side=max_side,
                crf=crf,
                preset=preset,
                batch_size=batch_size,
                progress=progress,
                stable=stable,
            )
        os.replace(partial, dst)
    except av.error.FFmpegError as exc:
        raise VideoInputError(f"{src}: video processing failed: {exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return VideoResult(dst, *result)


def _transcode(
    stylizer: Stylizer,
    source: av.container.InputContainer,
    src: Path,
    partial: Path,
    container_format: str,
    *,
    rotation: int,
    max_side: int | None,
    crf: int,
    preset: str,
    batch_size: int,
    progress: bool,
    stable: bool = False,
) -> tuple[int, Fraction, tuple[int, int], str, bool, int]:
    vin = source.streams.video[0]
    vin.thread_type = "AUTO"
    ain = source.streams.audio[0] if source.streams.audio else None
    coded_w, coded_h = vin.codec_context.width, vin.codec_context.height
    turned = rotation in (90, 270)
    shown_w, shown_h = (coded_h, coded_w) if turned else (coded_w, coded_h)
    fit_w, fit_h = fit_size(shown_w, shown_h, max_side or None)
    out_w, out_h = _even(fit_w), _even(fit_h)
    decode_w, decode_h = (out_h, out_w) if turned else (out_w, out_h)
    resize = (decode_w, decode_h) != (coded_w, coded_h)
    rate = vin.average_rate or vin.guessed_rate or Fraction(25)
    time_base = vin.time_base or Fraction(1, 90000)
    step = max(1, round(1 / (rate * time_base)))  # pts ticks per frame, for frames without timestamps

    with av.open(str(partial), "w", format=container_format) as out:
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height = out_w, out_h
        vout.pix_fmt = "yuv420p"
        vout.codec_context.time_base = time_base
        vout.time_base = time_base
        vout.options = {"crf": str(crf), "preset": preset}
        # Tag what we write (BT.709, limited range) so players do not have to guess the colours.
        context = vout.codec_context
        context.colorspace = context.color_primaries = context.color_trc = BT709
        context.color_range = MPEG_RANGE
        audio_mode, aout = "none", None
        if ain is not None:
            if _can_copy(ain, container_format):
                audio_mode, aout = "copied", out.add_stream_from_template(ain)
            else:
                audio_mode, aout = "transcoded to aac", out.add_stream("aac", rate=ain.rate or 44100)
                if ain.layout is not None:
                    aout.layout = ain.layout.name

        stabiliser = None
        if stable:
            from serve.temporal import TemporalStabiliser

            stabiliser = TemporalStabiliser()
        total = vin.frames or (int(vin.duration * time_base * rate) if vin.duration else None)
        bar = tqdm(total=total or None, unit="frame", desc=src.name, disable=not progress, leave=False)
        pending: list[tuple[int, np.ndarray]] = []
        count, last_pts = 0, None

        def flush() -> None:
            nonlocal count
            if not pending:
                return
            styled = stylizer.run_array(np.stack([array for _, array in pending]))
            for (pts, array), pixels in zip(pending, styled):
                if stabiliser is not None:
                    pixels = stabiliser(array, pixels)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
                frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709")
                frame.colorspace, frame.color_range = BT709, MPEG_RANGE
                frame.pts, frame.time_base = pts, time_base
                out.mux(vout.encode(frame))
            count += len(pending)
            bar.update(len(pending))
            pending.clear()

        streams = [vin] + ([ain] if ain is not None else [])
        for packet in source.demux(*streams):
            if packet.stream.type == "video":
                for frame in packet.decode():
                    # Scale when asked to, and whenever a stream changes resolution mid-way.
                    scale = resize or (frame.width, frame.height) != (decode_w, decode_h)
                    kwargs = {"width": decode_w, "height": decode_h, "interpolation": "LANCZOS"} if scale else {}
                    if frame.colorspace == UNSPECIFIED:  # untagged: guess like players do (HD -> BT.709)
                        kwargs["src_colorspace"] = untagged_colorspace(coded_h)
                    pixels = frame.to_ndarray(format="rgb24", **kwargs)
                    if rotation:
                        pixels = np.rot90(pixels, k=rotation // 90)
                    pts = frame.pts
                    if pts is None or (last_pts is not None and pts <= last_pts):
                        pts = 0 if last_pts is None else last_pts + step
                    last_pts = pts
                    pending.append((pts, pixels))
                    if len(pending) >= batch_size:
                        flush()
            elif aout is not None:
                if audio_mode == "copied":
                    if packet.dts is None:  # demuxer's end-of-stream marker
                        continue
                    packet.stream = aout
                    out.mux(packet)
                else:
                    for audio_frame in packet.decode():
                        out.mux(aout.encode(audio_frame))
        flush()
        out.mux(vout.encode(None))
        if aout is not None and audio_mode != "copied":
            out.mux(aout.encode(None))
        bar.close()
    if count == 0:
        raise VideoInputError(f"{src}: no video frame could be decoded")
    cuts = stabiliser.cuts if stabiliser is not None else 0
    return count, Fraction(rate), (out_w, out_h), audio_mode, stabiliser is not None, cuts
