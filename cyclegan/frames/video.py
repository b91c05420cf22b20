"""Decode sampled frames from one video with PyAV, seeking past the parts nobody asked for.

Strategy: targets (times) come from :class:`Sampling`. To reach the next target the reader either
decodes forward or, when the keyframe before the target lies beyond the current position, seeks
to that keyframe (``container.seek(..., backward=True, any_frame=False)``) and decodes forward
from there -- so one frame every 2 s of a 2 s-GOP video costs about one GOP of decoding per
sample instead of the whole video only when the GOP is long; with short GOPs most of the frames
between samples are never decoded. Keyframe positions come from the demuxer's index
(``stream.index_entries``: MP4/MOV) or, without one, from the keyframe spacing seen so far.

Frames are returned upright: the display-matrix rotation (``VideoFrame.rotation``, counter-
clockwise degrees, as phones write it) is applied.
"""

from __future__ import annotations

import bisect
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image

from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.images import DEFAULT_MAX_PIXELS
from cyclegan.contract.video import UNSPECIFIED, untagged_colorspace


class VideoError(ToolkitError):
    """A video that cannot be (fully) read; the message names the file and the likely cause."""


@dataclass(frozen=True)
class Sampling:
    """Which frames to take. Exactly one of ``every_seconds``, ``every_frames``, ``count``.

    ``count`` spreads N frames evenly over [start, end) (at the centre of N equal slices).
    ``start``/``end`` are seconds (``end=None``: to the end of the video).
    """

    every_seconds: float | None = None
    every_frames: int | None = None
    count: int | None = None
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        chosen = [x for x in (self.every_seconds, self.every_frames, self.count) if x is not None]
        if len(chosen) != 1:
            raise ValueError("choose exactly one of every_seconds, every_frames or count")
        if self.every_seconds is not None and not self.every_seconds > 0:
            raise ValueError(f"every_seconds must be > 0, got {self.every_seconds}")
        if self.every_frames is not None and self.every_frames < 1:
            raise ValueError(f"every_frames must be >= 1, got {self.every_frames}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if self.start < 0 or (self.end is not None and self.end <= self.start):
            raise ValueError(f"need 0 <= start < end, got start={self.start}, end={self.end}")

    def describe(self) -> dict[str, float | int | None]:
        return {
            "every_seconds": self.every_seconds,
            "every_frames": self.every_frames,
            "count": self.count,
            "start": self.start,
            "end": self.end,
        }


class _Targets:
    """The wanted times ``first + k * step`` for k < count, as a lazy sequence (count may be inf)."""

    def __init__(self, spec: tuple[float, float, float]) -> None:
        self.first, self.step, self.count = spec

    def __len__(self) -> int:
        return sys.maxsize if math.isinf(self.count) else int(self.count)

    def __getitem__(self, k: int) -> float:
        return self.first + k * self.step


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    duration: float | None  # seconds, None when the container does not say
    codec: str


@dataclass(frozen=True)
class Sample:
    time: float  # seconds from the start of the video stream
    image: Image.Image  # upright RGB


def open_video(path: str | Path) -> av.container.InputContainer:
    """Open ``path`` and check it has a decodable video stream, or raise VideoError saying why."""
    path = Path(path)
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video file")
    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as exc:
        raise VideoError(
            f"{path}: not a readable video ({exc.strerror or exc}); "
            "the file is corrupt, truncated (an MP4 cut short loses its index) or not a media file"
        ) from None
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        container.close()
        raise VideoError(f"{path}: has no video stream ({kinds}); an audio-only file cannot give frames")
    return container


def _check_frame_size(path: Path, info: VideoInfo) -> None:
    """Frames over the toolkit's pixel limit would take gigabytes each (a 10000x10000 MJPEG: 300 MB per frame)."""
    pixels = info.width * info.height
    if pixels > DEFAULT_MAX_PIXELS:
        raise VideoError(
            f"{path}: frames are {info.width}x{info.height} = {pixels / 1e6:.1f} megapixels, over the limit of "
            f"{DEFAULT_MAX_PIXELS / 1e6:.1f} megapixels; scale the video down first (e.g. ffmpeg -vf scale=1920:-2)"
        )


class VideoReader:
    """One open video. ``decoded`` counts frames the codec produced (the real cost)."""

    def __init__(self, path: str | Path, *, threads: int = 0) -> None:
        self.path = Path(path)
        self._container = open_video(self.path)
        try:
            self._stream = self._container.streams.video[0]
            if self._stream.codec_context is None or not self._stream.time_base:
                raise VideoError(f"{self.path}: the video stream's codec or timing is unknown; the file is damaged")
            self._stream.thread_type = "AUTO"
            self._stream.thread_count = threads
            self._tb = self._stream.time_base
            self._t0 = float(self._stream.start_time * self._tb) if self._stream.start_time is not None else 0.0
            self.decoded = 0
            self.seeks = 0
            self.info = self._probe()
            _check_frame_size(self.path, self.info)
        except BaseException:
            self._container.close()
            raise
        self._keyframes = self._index_keyframes()
        self._gop_seen = 0.0  # longest keyframe spacing observed while decoding
        self._last_key: float | None = None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _probe(self) -> VideoInfo:
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 25.0
        if not math.isfinite(fps) or not 0 < fps <= 1000:  # a damaged header; the frames' own times still count
            fps = 25.0
        # How much shorter than the declared duration the stream may end before it counts as
        # truncated: a container-level duration (MKV) also covers an audio track that may run on.
        self._slack = 2.5 / fps
        if stream.duration is not None:
            duration: float | None = float(stream.duration * self._tb)
        elif self._container.duration is not None:
            duration = self._container.duration / av.time_base
            self._slack = max(1.0, 0.02 * duration)
        else:
            duration = None
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            duration = None
        ctx = stream.codec_context
        return VideoInfo(ctx.width, ctx.height, fps, duration, ctx.name)

    def _index_keyframes(self) -> list[float]:
        """Keyframe times from the demuxer index (complete for MP4/MOV, partial or empty elsewhere)."""
        try:
            entries = list(self._stream.index_entries)
        except (AttributeError, TypeError):
            return []
        if not entries:
            return []
        # MP4 index timestamps are decode times; with B-frames they run ahead of presentation
        # times by a constant delay, which the first entry (the first keyframe, pts = start) shows.
        delay = float(entries[0].timestamp * self._tb) - self._t0
        times = sorted(float(e.timestamp * self._tb) - self._t0 - delay for e in entries if e.is_keyframe)
        return times if len(times) >= 2 else []

    def _time(self, frame: av.VideoFrame) -> float:
        return float(frame.pts * self._tb) - self._t0 if frame.pts is not None else math.nan

    def _frames(self) -> Iterator[av.VideoFrame]:
        try:
            for frame in self._container.decode(self._stream):
                self.decoded += 1
                if frame.key_frame:
                    t = self._time(frame)
                    if self._last_key is not None and t > self._last_key:
                        self._gop_seen = max(self._gop_seen, t - self._last_key)
                    self._last_key = t
                yield frame
        except av.FFmpegError as exc:
            raise VideoError(
                f"{self.path}: decoding failed ({exc.strerror or exc}); the file is corrupt or truncated"
            ) from None

    def _seek(self, t: float) -> None:
        try:
            self._container.seek(int((t + self._t0) / self._tb), stream=self._stream, backward=True, any_frame=False)
        except av.FFmpegError as exc:  # a damaged index or a file cut short before the target
            raise VideoError(
                f"{self.path}: cannot seek to {t:.2f} s ({exc.strerror or exc}); the file is corrupt or truncated"
            ) from None
        self.seeks += 1
        self._last_key = None

    def _worth_seeking(self, target: float, position: float | None) -> bool:
        """Seek when the keyframe before ``target`` is past where the decoder already is."""
        if position is None:
            return target > 0
        if self._keyframes:
            i = bisect.bisect_right(self._keyframes, target + 1e-6) - 1
            return i >= 0 and self._keyframes[i] > position + 1e-6
        gop = self._gop_seen or 2.0
        return target - position > gop

    def sample(self, sampling: Sampling, *, seek: bool = True, keyframes_only: bool = False) -> Iterator[Sample]:
        """Yield upright frames for ``sampling`` in time order.

        Each time target gets the frame nearest to it (ties: the earlier one). With
        ``keyframes_only`` the decoder skips every non-key frame
        (``codec_context.skip_frame = "NONKEY"``) and a target gets the first keyframe at or after
        it: only keyframes are decoded, times are only as exact as the keyframe spacing.

        Raises VideoError at the end if the stream stops well before its declared duration
        (truncated file) -- the frames yielded before that are valid.
        """
        fps = self.info.fps
        half = 0.5 / fps
        duration = self.info.duration
        end = sampling.end if sampling.end is not None else math.inf
        if duration is not None:
            end = min(end, duration)
        last_time: float | None = None
        if keyframes_only:
            if sampling.every_frames is not None:
                raise ValueError("keyframes-only sampling works with every_seconds or count, not every_frames")
            yield from self._sample_keyframes(sampling, end, half, seek)
            return
        if sampling.every_frames is not None:
            if seek and sampling.start > 0:
                self._seek(sampling.start)
            index = 0
            for frame in self._frames():
                t = self._time(frame)
                if t < sampling.start - half:
                    continue
                if sampling.end is not None and t >= sampling.end - half:
                    break
                last_time = t
                if index % sampling.every_frames == 0:
                    yield Sample(t, self._upright(frame))
                index += 1
            self._check_complete(last_time, end, sampling)
            return
        targets = _Targets(self._target_times(sampling, end))
        position: float | None = None  # time of the last decoded frame
        frames: Iterator[av.VideoFrame] | None = None
        k = 0
        while k < len(targets):
            target = targets[k]
            if frames is None or (seek and self._worth_seeking(target, position)):
                if seek and (position is not None or target > 0):
                    self._seek(target)
                    position = None
                frames = self._frames()
            chosen = None
            for frame in frames:
                t = self._time(frame)
                position = t
                if t >= target - half:
                    chosen = frame
                    break
            if chosen is None:  # end of stream
                break
            last_time = position
            yield Sample(position, self._upright(chosen))
            k += 1
            while k < len(targets) and targets[k] <= position + half:
                k += 1  # several targets fall on this frame: take it once
        if k < len(targets) and duration is not None and targets[k] < duration - self._slack:
            raise VideoError(
                f"{self.path}: the stream ends at {0.0 if last_time is None else last_time:.2f} s but the "
                f"file says {duration:.2f} s; it is truncated or corrupt (frames before that were kept)"
            )

    def _sample_keyframes(self, sampling: Sampling, end: float, half: float, seek: bool) -> Iterator[Sample]:
        targets = _Targets(self._target_times(sampling, end))
        if len(targets) == 0:
            return
        self._stream.codec_context.skip_frame = "NONKEY"
        if seek and targets[0] > 0:
            self._seek(targets[0])
        k = 0
        for frame in self._frames():
            t = self._time(frame)
            if t >= end - half:
                break
            if t >= targets[k] - half:
                yield Sample(t, self._upright(frame))
                k += 1
                while k < len(targets) and targets[k] <= t + half:
                    k += 1
                if k >= len(targets):
                    break

    def _target_times(self, sampling: Sampling, end: float) -> tuple[float, float, float]:
        """(first, step, count) of the wanted times; count is inf for an open-ended video."""
        if sampling.count is not None:
            if math.isinf(end):
                raise VideoError(
                    f"{self.path}: the duration is unknown, so --count cannot spread frames; use --every-seconds"
                )
            step = (end - sampling.start) / sampling.count
            return sampling.start + 0.5 * step, step, sampling.count
        step = sampling.every_seconds
        assert step is not None
        count = math.inf if math.isinf(end) else max(0, math.ceil((end - sampling.start) / step - 1e-9))
        return sampling.start, step, count

    def _check_complete(self, last_time: float | None, end: float, sampling: Sampling) -> None:
        duration = self.info.duration
        if duration is None or (sampling.end is not None and sampling.end < duration):
            return
        if last_time is None or last_time < duration - self._slack:
            raise VideoError(
                f"{self.path}: the stream ends at {0.0 if last_time is None else last_time:.2f} s but the "
                f"file says {duration:.2f} s; it is truncated or corrupt (frames before that were kept)"
            )

    @staticmethod
    def _upright(frame: av.VideoFrame) -> Image.Image:
        # Tagged colours are honoured by PyAV; untagged ones are guessed as players (and
        # serve.video) do: HD as BT.709, SD as BT.601.
        kwargs = {}
        if frame.colorspace == UNSPECIFIED:
            kwargs["src_colorspace"] = untagged_colorspace(frame.height)
        image = frame.to_image(**kwargs)
        turns = round((frame.rotation or 0) / 90) % 4
        if turns == 1:
            return image.transpose(Image.Transpose.ROTATE_90)
        if turns == 2:
            return image.transpose(Image.Transpose.ROTATE_180)
        if turns == 3:
            return image.transpose(Image.Transpose.ROTATE_270)
        return image
