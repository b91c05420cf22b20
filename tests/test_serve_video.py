"""serve.video on real PyAV-encoded videos (tests/media.py): frames, fps, size, rotation, audio kept."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import texture, truncated_copy, upright_marker, write_audio_only, write_h264
from onnx_models import make_test_model

from serve.stylizer import Stylizer
from serve.video import VideoInputError, output_name, stylize_video


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory: pytest.TempPathFactory) -> Stylizer:
    return Stylizer(make_test_model(tmp_path_factory.mktemp("m") / "cartoon.onnx"), threads=1)


def probe(path: Path) -> dict:
    """What a player sees: frame count, rate, size, first frame (upright), audio codec and seconds."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = [f for f in container.decode(video)]
        first = frames[0]
        pixels = first.to_ndarray(format="rgb24")
        if first.rotation:
            pixels = np.rot90(pixels, k=int(first.rotation) // 90)
        info = {
            "frames": len(frames),
            "fps": video.average_rate,
            "size": (pixels.shape[1], pixels.shape[0]),
            "first": pixels,
            "pts": [f.pts * f.time_base for f in frames],
        }
    with av.open(str(path)) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        info["audio_codec"] = audio.codec_context.name if audio else None
        info["audio_seconds"] = (sum(f.samples for f in container.decode(audio)) / audio.rate) if audio else None
    return info


def test_round_trip_keeps_frames_fps_size_and_audio(stylizer: Stylizer, tmp_path: Path) -> None:
    src = write_h264(
        tmp_path / "clip.mp4", [upright_marker(36, 64, i) for i in range(30)], fps=12, audio_seconds=2.5, rotate=90
    )
    result = stylize_video(stylizer, src, tmp_path / "out" / "clip.mp4", progress=False)
    before, after = probe(src), probe(result.path)
    assert result.frames == after["frames"] == before["frames"] == 30
    assert after["fps"] == before["fps"] == Fraction(12)
    assert after["pts"] == before["pts"]  # timestamps passed through
    assert after["size"] == before["size"] == (64, 36) == result.size  # upright, same size
    assert result.audio == "copied" and after["audio_codec"] == "aac"
    assert after["audio_seconds"] == pytest.approx(before["audio_seconds"], abs=1e-3)
    assert after["audio_seconds"] == pytest.approx(2.5, abs=0.05)
    # The permute model maps (R, G, B) -> (G, B, R): the red-tinted top turns blue, the blue bottom green.
    top, bottom = after["first"][:18].mean(axis=(0, 1)), after["first"][18:].mean(axis=(0, 1))
    assert top[2] > top[0] + 60 and bottom[1] > bottom[2] + 60, (top, bottom)
    assert not list((tmp_path / "out").glob("*.partial"))


def write_with_flac(path: Path, frames: int = 8, fps: int = 10) -> Path:
    """An MKV with H.264 video and a FLAC track: MOV cannot hold FLAC, so the audio must be transcoded."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 40, 30, "yuv420p"
        audio = container.add_stream("flac", rate=22050)
        audio.layout = "mono"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(texture(30, 40, i), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples = 22050 * frames // fps
        for start in range(0, samples, 1024):
            n = min(1024, samples - start)
            tone = (3000 * np.sin(np.arange(start, start + n) / 10)).astype(np.int16)[None]
            chunk = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 22050, start, Fraction(1, 22050)
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
    return path


def test_audio_transcoded_when_container_refuses_copy_and_max_side_even(stylizer: Stylizer, tmp_path: Path) -> None:
    src = write_with_flac(tmp_path / "flac.mkv")
    result = stylize_video(stylizer, src, tmp_path / "flac.mov", max_side=25, progress=False)
    after = probe(result.path)
    assert result.audio == "transcoded to aac" and after["audio_codec"] == "aac"
    assert after["audio_seconds"] == pytest.approx(0.8, abs=0.05)
    assert after["frames"] == 8 and after["fps"] == Fraction(10)
    assert result.size == after["size"] == (24, 18)  # 25 x 18.75 -> even dims for yuv420p


def test_bad_inputs_are_clear_errors_and_leave_nothing(stylizer: Stylizer, tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("not a video at all")
    audio_only = write_audio_only(tmp_path / "song.m4a", seconds=0.5)
    good = write_h264(tmp_path / "good.mp4", [texture(32, 48, i) for i in range(6)], fps=6)
    truncated = truncated_copy(good, tmp_path / "cut.mp4", 0.5)
    out = tmp_path / "out"
    for bad, pattern in [
        (tmp_path / "notes.mp4", "cannot read"),
        (audio_only, "no video stream"),
        (truncated, "cannot read"),
        (tmp_path / "missing.mp4", "no such file"),
    ]:
        with pytest.raises(VideoInputError, match=pattern):
            stylize_video(stylizer, bad, out / "x.mp4", progress=False)
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(ValueError, match="use .mp4"):
        stylize_video(stylizer, good, out / "x.webm", progress=False)
    assert output_name("a/b.webm") == "b.mp4" and output_name("c.MOV") == "c.MOV"


def test_variable_frame_timing_is_kept(stylizer: Stylizer, tmp_path: Path) -> None:
    """Irregular timestamps (a variable-frame-rate phone clip) come out exactly as they went in."""
    src = tmp_path / "vfr.mkv"
    stamps = [0, 1, 2, 5, 6, 10, 11]
    with av.open(str(src), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 48, 32, "yuv420p"
        for i, pts in enumerate(stamps):
            frame = av.VideoFrame.from_ndarray(texture(32, 48, i), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 10)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    result = stylize_video(stylizer, src, tmp_path / "vfr_out.mp4", progress=False)
    assert probe(result.path)["pts"] == probe(src)["pts"] == [Fraction(p, 10) for p in stamps]
    assert result.audio == "none"


@pytest.mark.parametrize("tagged", [False, True], ids=["untagged", "bt709"])
def test_colours_survive_and_output_is_tagged(stylizer: Stylizer, tmp_path: Path, tagged: bool) -> None:
    """A flat colour comes back channel-rotated within a few levels, whichever YUV matrix the input used."""
    src = tmp_path / "flat.mp4"
    colour = (200, 50, 30)
    with av.open(str(src), "w") as container:
        video = container.add_stream("libx264", rate=5)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        if tagged:
            video.codec_context.colorspace = video.codec_context.color_primaries = video.codec_context.color_trc = 1
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), colour, np.uint8), format="rgb24")
            if tagged:
                frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709")
                frame.colorspace = 1
            frame.pts, frame.time_base = i, Fraction(1, 5)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    result = stylize_video(stylizer, src, tmp_path / "flat_out.mp4", progress=False)
    with av.open(str(result.path)) as container:
        frame = next(container.decode(video=0))
        assert frame.colorspace == 1  # BT.709, so players do not guess
        got = frame.to_ndarray(format="rgb24")[24, 32].astype(int)
    assert np.abs(got - np.array([50, 30, 200])).max() <= 4, got
