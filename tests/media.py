"""Real media files for tests, encoded with PyAV (no fixtures on disk, no mocks).

Shared by every test that needs a video: frame extraction (``tests/test_frames*.py``), video
stylization in serving, the benchmarks. Tests import it as ``from media import write_h264``
(``tests/`` has no ``__init__.py``, so pytest's default ``prepend`` import mode puts ``tests/``
on ``sys.path``); scripts outside pytest add ``tests/`` to ``sys.path`` first.

Encoders
  * :func:`write_h264` -- H.264 (libx264) in MP4/MKV/MOV, optional AAC audio track, optional
    display-matrix rotation (as phones write it), fixed GOP, any size (odd sizes included).
  * :func:`write_audio_only` -- an AAC file with no video stream.
  * :func:`truncated_copy` -- the first part of a file's bytes, like an interrupted download.

Frame content (uint8 RGB arrays ``[height, width, 3]``)
  * :func:`texture` -- a sharp random block pattern; different seeds give perceptually different
    frames (dHash distance ~32 of 64), the same seed gives the same frame (a static segment).
  * :func:`solid` -- one colour (black frames, white frames, flat frames).
  * :func:`blurred` -- a texture blurred so hard that its sharpness score collapses.
  * :func:`upright_marker` -- a texture whose top half is red-tinted and bottom half blue-tinted,
    to check that rotated videos come out upright.

Colours: HD (height >= 720) is converted with BT.709 and tagged BT.709; smaller videos use
BT.601 untagged, which is what decoders assume for untagged SD. Either way a reader that honours
tags and guesses like players do gets the RGB values back within a few levels.

Notes on H.264/yuv420p: 4:2:0 chroma needs even width and height, so libx264 refuses odd sizes
in yuv420p. :func:`write_h264` encodes an odd-sized video in ``yuv444p`` (High 4:4:4 profile,
which FFmpeg decodes everywhere) so the decoded size is exactly the size given; even sizes such
as 642x362 (not multiples of 16 or 4: the codec pads and crops internally) stay in yuv420p,
which is what cameras and players produce.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageFilter

BT709 = 1  # FFmpeg's AVCOL_SPC_BT709 / AVCOL_PRI_BT709 / AVCOL_TRC_BT709


def write_h264(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int = 25,
    *,
    audio_seconds: float | None = None,
    rotate: int = 0,
    gop: int | None = None,
    crf: int = 18,
    bframes: int = 2,
    pix_fmt: str | None = None,
    preset: str = "ultrafast",
) -> Path:
    """Encode RGB ``frames`` (uint8 ``[h, w, 3]``, all the same size) as H.264 into ``path``.

    ``frames`` are what a viewer should see. With ``rotate`` (degrees, a multiple of 90,
    counter-clockwise as ``VideoFrame.rotation`` reads it back) they are stored turned the other
    way and the display matrix says how to turn them back, the way phones record portrait video:
    a reader that ignores the matrix gets sideways frames. ``gop`` is the keyframe interval in
    frames (default: 2 s). ``audio_seconds`` adds a stereo AAC track (a 440 Hz tone) of that
    length. The container follows the suffix (.mp4, .mkv, .mov). Returns ``path``.
    """
    path = Path(path)
    if rotate % 90:
        raise ValueError(f"rotate must be a multiple of 90 degrees, got {rotate}")
    turns = (rotate // 90) % 4
    frame_iter = iter(frames)
    first = next(frame_iter, None)
    if first is None:
        raise ValueError("write_h264 needs at least one frame")
    with av.open(str(path), mode="w") as container:
        stored = np.rot90(first, k=-turns) if turns else first
        height, width = stored.shape[:2]
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        odd = width % 2 or height % 2
        stream.pix_fmt = pix_fmt or ("yuv444p" if odd else "yuv420p")
        stream.gop_size = gop if gop is not None else 2 * fps
        stream.max_b_frames = bframes
        stream.options = {
            "crf": str(crf),
            "preset": preset,
            # a fixed GOP: no extra keyframes at scene cuts, so keyframe spacing is what the test set
            "x264-params": f"keyint={stream.gop_size}:min-keyint={stream.gop_size}:scenecut=0",
        }
        if turns:
            stream.set_display_rotation(rotate)
        # Colours as players read them: HD is converted with BT.709 and tagged so; smaller sizes
        # use BT.601 untagged (what decoders assume for untagged SD).
        hd = height >= 720
        if hd:
            ctx = stream.codec_context
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = BT709
        audio = None
        if audio_seconds is not None:
            audio = container.add_stream("aac", rate=44100)
            audio.layout = "stereo"

        def video_frames():
            yield stored
            for frame in frame_iter:
                yield np.rot90(frame, k=-turns) if turns else frame

        for index, array in enumerate(video_frames()):
            if array.shape != stored.shape or array.dtype != np.uint8:
                raise ValueError(f"frame {index} is {array.dtype} {array.shape}, expected uint8 {stored.shape}")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            if hd:
                frame = frame.reformat(format=stream.pix_fmt, dst_colorspace="ITU709")
                frame.colorspace = BT709
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio is not None:
            _encode_tone(container, audio, audio_seconds)
    return path


def write_audio_only(path: str | Path, seconds: float = 2.0) -> Path:
    """An AAC file (``.m4a``/``.mp4``/``.mka``) with one audio stream and no video stream."""
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        audio = container.add_stream("aac", rate=44100)
        audio.layout = "stereo"
        _encode_tone(container, audio, seconds)
    return path


def _encode_tone(container: av.container.OutputContainer, audio: av.AudioStream, seconds: float) -> None:
    rate = 44100
    total = int(round(seconds * rate))
    chunk = 1024
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(audio.encode(frame))
    container.mux(audio.encode(None))


def truncated_copy(src: str | Path, dst: str | Path, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst`` (an interrupted download).

    An MP4 written by :func:`write_h264` keeps its index (``moov``) at the end, so a truncated
    MP4 cannot be opened at all; a truncated MKV opens and ends early.
    """
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: max(1, int(len(data) * fraction))])
    return Path(dst)


def texture(height: int, width: int, seed: int, block: int = 8) -> np.ndarray:
    """A sharp pattern of random colour blocks (``block`` px); new seed, perceptually new frame."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (-(-height // block), -(-width // block), 3), dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(np.repeat(small, block, 0), block, 1)[:height, :width])


def solid(height: int, width: int, value: int | tuple[int, int, int] = 0) -> np.ndarray:
    """One colour everywhere (0: black, 255: white)."""
    return np.full((height, width, 3), value, dtype=np.uint8)


def blurred(height: int, width: int, seed: int, radius: float = 12.0) -> np.ndarray:
    """A :func:`texture` with a strong Gaussian blur: mid brightness, some contrast, no detail."""
    image = Image.fromarray(texture(height, width, seed, block=16)).filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(image).copy()


def upright_marker(height: int, width: int, seed: int) -> np.ndarray:
    """A texture tinted red in the top half and blue in the bottom half (orientation checks)."""
    frame = texture(height, width, seed).astype(np.int16) // 2
    frame[: height // 2, :, 0] += 127
    frame[height // 2 :, :, 2] += 127
    return frame.astype(np.uint8)
