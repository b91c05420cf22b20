"""cyclegan.frames from videos: designed test videos with exact kept/dropped counts, failures,
idempotent re-runs and appends. Every video is encoded here with PyAV (tests/media.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from media import blurred, solid, texture, truncated_copy, upright_marker, write_audio_only, write_h264
from PIL import Image

from cyclegan.cli import main as cyclegan_main
from cyclegan.frames.pipeline import FrameOptions, build_from_videos
from cyclegan.frames.store import split_for
from cyclegan.frames.video import Sampling, VideoReader

H, W, FPS = 362, 642, 5


def designed_frames() -> list[np.ndarray]:
    """13 s at 5 fps; one sample per second sees: 3 distinct scenes, a 3 s static segment,
    2 s of black, 1 blurry second, 1 white second, a scene cut (2 different scenes), 1 flat gray."""
    seconds = (
        [texture(H, W, 1), texture(H, W, 2), texture(H, W, 3)]
        + [texture(H, W, 100)] * 3
        + [solid(H, W, 0)] * 2
        + [blurred(H, W, 7)]
        + [solid(H, W, 255)]
        + [texture(H, W, 200), texture(H, W, 201)]
        + [solid(H, W, 128)]
    )
    return [frame for frame in seconds for _ in range(FPS)]


EXPECTED_DROPPED = {"duplicate": 2, "dark": 2, "blurry": 1, "bright": 1, "flat": 1}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    designed = write_h264(root / "designed.mp4", designed_frames(), FPS, audio_seconds=13.0, gop=2 * FPS)
    other = write_h264(root / "other.mkv", [texture(120, 160, 50 + i // FPS) for i in range(3 * FPS)], FPS)
    dense = write_h264(root / "dense.mkv", [texture(64, 96, 300 + i) for i in range(40)], 10)
    return {
        "designed": designed,
        "other": other,
        "truncated_mp4": truncated_copy(designed, root / "cut.mp4", 0.5),
        "truncated_mkv": truncated_copy(dense, root / "cut.mkv", 0.5),
        "audio": write_audio_only(root / "voice.m4a", 1.0),
        "text": _write(root / "notes.mp4", b"this is not a video\n"),
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _manifest(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.glob("t*/*") if p.is_file())


def test_designed_video_exact_counts(videos, tmp_path):
    out = tmp_path / "ds"
    summary = build_from_videos([videos["designed"]], out, "B", FrameOptions(sampling=Sampling(every_seconds=1.0)))
    print(summary.format())
    assert summary.ok and summary.sampled == 13
    assert summary.kept == 6
    assert dict(summary.dropped) == EXPECTED_DROPPED
    assert _files(out) == [f"trainB/designed_{s * 1000:08d}ms.jpg" for s in (0, 1, 2, 3, 10, 11)]
    with Image.open(out / "trainB/designed_00000000ms.jpg") as image:
        assert image.size == (W, H) and image.mode == "RGB"
    frames = [r for r in _manifest(out) if r["kind"] == "frame"]
    assert [r["reason"] for r in frames] == [
        None,
        None,
        None,
        None,
        "duplicate",
        "duplicate",
        "dark",
        "dark",
        "blurry",
        "bright",
        None,
        None,
        "flat",
    ]
    assert all(set(r["scores"]) == {"mean", "std", "sharpness"} for r in frames)
    (source,) = [r for r in _manifest(out) if r["kind"] == "source"]
    assert source["status"] == "done" and source["kept"] == 6 and source["dropped"] == EXPECTED_DROPPED


def test_thresholds_and_dedup_can_be_switched_off(videos, tmp_path):
    from cyclegan.frames.quality import QualityFilter

    options = FrameOptions(
        sampling=Sampling(every_seconds=1.0), quality=QualityFilter(None, None, None, None), dedup="off"
    )
    summary = build_from_videos([videos["designed"]], tmp_path / "ds", "B", options)
    assert summary.kept == 13 and not summary.dropped


def test_seeking_decodes_less_and_picks_the_same_frames(videos):
    sampling = Sampling(every_seconds=4.0)
    with VideoReader(videos["designed"]) as reader:
        sought = [(round(s.time, 3), np.asarray(s.image)) for s in reader.sample(sampling)]
        sought_cost = reader.decoded
    with VideoReader(videos["designed"]) as reader:
        linear = [(round(s.time, 3), np.asarray(s.image)) for s in reader.sample(sampling, seek=False)]
        linear_cost = reader.decoded
    assert [t for t, _ in sought] == [t for t, _ in linear] == [0.0, 4.0, 8.0, 12.0]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(sought, linear))
    assert sought_cost <= 4 and linear_cost == 12 * FPS + 1


def test_sampling_modes_pick_exact_times(videos):
    def times(sampling: Sampling) -> list[float]:
        with VideoReader(videos["designed"]) as reader:
            return [round(s.time, 3) for s in reader.sample(sampling)]

    assert times(Sampling(count=4)) == [1.6, 4.8, 8.2, 11.4]  # centres of 4 slices of 13 s, on 0.2 s frames
    assert times(Sampling(every_frames=7, start=1.0, end=4.0)) == [1.0, 2.4, 3.8]
    assert times(Sampling(every_seconds=2.5, start=3.0, end=9.0)) == [
        3.0,
        5.4,
        8.0,
    ]  # 5.5 s lies between frames: the earlier one


def test_rotated_odd_sized_video_comes_out_upright(tmp_path):
    upright = [upright_marker(81, 47, seed=i) for i in range(4)]  # portrait, odd size (yuv444p)
    video = write_h264(tmp_path / "phone.mp4", upright, 2, rotate=90)
    with VideoReader(video) as reader:
        assert (reader.info.width, reader.info.height) == (81, 47)  # stored sideways
        (sample, *_) = reader.sample(Sampling(every_seconds=1.0))
    array = np.asarray(sample.image).astype(int)
    assert sample.image.size == (47, 81)
    top, bottom = array[:40].mean(axis=(0, 1)), array[41:].mean(axis=(0, 1))
    assert top[0] - top[2] > 60 and bottom[2] - bottom[0] > 60  # red on top, blue below


def test_resize_crop_split_and_dataset_json(videos, tmp_path):
    out = tmp_path / "ds"
    (out).mkdir()
    (out / "dataset.json").write_text(json.dumps({"domains": {"A": "photo"}, "note": "kept"}))
    options = FrameOptions(
        sampling=Sampling(every_seconds=1.0), resize=100, crop=96, crop_mode="random", fmt="png", test_ratio=0.5
    )
    summary = build_from_videos([videos["designed"]], out, "B", options, name="cartoon")
    assert summary.kept == 6
    info = json.loads((out / "dataset.json").read_text())
    assert info == {"domains": {"A": "photo", "B": "cartoon"}, "note": "kept"}
    files = _files(out)
    assert len(files) == 6 and {f.split("/")[0] for f in files} == {"trainB", "testB"}
    for relative in files:
        folder, name = relative.split("/")
        assert folder == split_for(name, 0.5) + "B"
        with Image.open(out / relative) as image:
            assert image.size == (96, 96) and image.format == "PNG"


def test_failures_are_reported_and_others_processed_python_api(videos, tmp_path):
    inputs = [videos["truncated_mp4"], videos["audio"], videos["other"], videos["text"], videos["truncated_mkv"]]
    summary = build_from_videos(
        inputs, tmp_path / "ds", "B", FrameOptions(sampling=Sampling(every_seconds=0.1)), log=lambda message: None
    )
    print(summary.format())
    assert not summary.ok
    failed = dict(summary.failed)
    assert set(failed) == {str(videos[k]) for k in ("truncated_mp4", "audio", "text", "truncated_mkv")}
    assert "no video stream" in failed[str(videos["audio"])]
    assert "not a readable video" in failed[str(videos["text"])]
    assert "truncated" in failed[str(videos["truncated_mkv"])]
    assert summary.processed == [str(videos["other"])]
    assert len([f for f in _files(tmp_path / "ds") if f.startswith("trainB/other_")]) == 3
    assert any(f.startswith("trainB/cut_") for f in _files(tmp_path / "ds"))  # frames before the cut are kept


def test_failures_give_nonzero_exit_in_the_cli(videos, tmp_path):
    out = tmp_path / "ds"
    args = [
        "frames",
        str(videos["other"]),
        str(videos["truncated_mp4"]),
        str(videos["audio"]),
        str(videos["text"]),
        "--out",
        str(out),
        "--domain",
        "B",
        "--no-progress",
    ]
    result = CliRunner().invoke(cyclegan_main, args)
    assert result.exit_code == 1, result.output
    assert "3 failed" in result.output and "no video stream" in result.output
    assert "frames: 3 examined" in result.output
    assert len(_files(out)) == 3


def test_rerun_is_idempotent_and_second_video_is_appended(videos, tmp_path):
    out = tmp_path / "ds"
    options = FrameOptions(sampling=Sampling(every_seconds=1.0), test_ratio=0.3)
    first = build_from_videos([videos["designed"]], out, "B", options)
    files, manifest = _files(out), (out / "manifest.jsonl").read_bytes()
    stamps = {f: (out / f).stat().st_mtime_ns for f in files}

    again = build_from_videos([videos["designed"]], out, "B", options)
    assert again.skipped == [str(videos["designed"])] and again.decoded == 0
    assert _files(out) == files and (out / "manifest.jsonl").read_bytes() == manifest
    assert {f: (out / f).stat().st_mtime_ns for f in files} == stamps

    appended = build_from_videos([videos["designed"], videos["other"]], out, "B", options)
    assert appended.skipped == [str(videos["designed"])] and appended.processed == [str(videos["other"])]
    assert appended.kept == 3 and len(_files(out)) == first.kept + 3


def test_global_dedup_sees_frames_already_in_the_dataset(videos, tmp_path):
    out = tmp_path / "ds"
    build_from_videos([videos["designed"]], out, "B")
    copy = write_h264(tmp_path / "rerun_copy.mkv", designed_frames()[: 3 * FPS], FPS)  # scenes 1-3 again
    summary = build_from_videos([copy], out, "B")
    assert summary.kept == 0 and summary.dropped == {"duplicate": 3}


def test_changed_options_redo_the_video(videos, tmp_path):
    out = tmp_path / "ds"
    build_from_videos([videos["other"]], out, "B", FrameOptions(sampling=Sampling(every_seconds=1.0)))
    summary = build_from_videos(
        [videos["other"]], out, "B", FrameOptions(sampling=Sampling(every_seconds=1.0), fmt="png")
    )
    assert summary.kept == 3  # not duplicates of its own earlier frames: those were forgotten
    assert _files(out) == [f"trainB/other_{s * 1000:08d}ms.png" for s in range(3)]


def test_letterbox_bars_are_cropped(tmp_path):
    frames = []
    for i in range(4):
        frame = solid(120, 200, 0)
        frame[20:100] = texture(80, 200, 400 + i)
        frames.append(frame)
    video = write_h264(tmp_path / "wide.mp4", frames, 2)
    out = tmp_path / "ds"
    build_from_videos([video], out, "B", FrameOptions(sampling=Sampling(every_seconds=1.0), letterbox=True))
    with Image.open(out / "trainB/wide_00000000ms.jpg") as image:
        assert image.size == (200, 80)


def test_folders_are_searched_recursively_for_videos(videos, tmp_path):
    folder = tmp_path / "inbox"
    (folder / "season1").mkdir(parents=True)
    (folder / "season1" / "other.mkv").write_bytes(videos["other"].read_bytes())
    (folder / "notes.txt").write_text("not a video, and not named like one: ignored")
    summary = build_from_videos([folder], tmp_path / "ds", "B")
    assert summary.ok and summary.processed == [str(folder / "season1" / "other.mkv")] and summary.kept == 3


def test_frames_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, cyclegan.frames.cli, cyclegan.frames.pipeline; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_same_stem_from_two_folders_does_not_overwrite(videos, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_h264(tmp_path / "a/clip.mkv", [texture(64, 96, 500 + i // 2) for i in range(4)], 2)
    second = write_h264(tmp_path / "b/clip.mkv", [texture(64, 96, 600 + i // 2) for i in range(4)], 2)
    summary = build_from_videos([first, second], tmp_path / "ds", "B")
    assert summary.kept == 4
    names = [f.split("/")[1] for f in _files(tmp_path / "ds")]
    assert names[:2] == ["clip-" + names[0][5:11] + "_00000000ms.jpg", "clip-" + names[0][5:11] + "_00001000ms.jpg"]
    assert names[2:] == ["clip_00000000ms.jpg", "clip_00001000ms.jpg"]


def test_consecutive_dedup_keeps_a_scene_that_returns_later(tmp_path):
    scenes = [texture(64, 96, 700), texture(64, 96, 700), texture(64, 96, 701), texture(64, 96, 700)]
    video = write_h264(tmp_path / "abba.mkv", [s for s in scenes for _ in range(2)], 2)
    consecutive = build_from_videos([video], tmp_path / "c", "B", FrameOptions(dedup="consecutive"))
    global_ = build_from_videos([video], tmp_path / "g", "B", FrameOptions(dedup="global"))
    assert (consecutive.kept, dict(consecutive.dropped)) == (3, {"duplicate": 1})
    assert (global_.kept, dict(global_.dropped)) == (2, {"duplicate": 2})


def test_cli_count_start_end_and_usage_errors(videos, tmp_path):
    out = tmp_path / "ds"
    base = ["frames", str(videos["designed"]), "--out", str(out), "--domain", "B", "--no-progress"]
    result = CliRunner().invoke(cyclegan_main, base + ["--count", "2", "--start", "10", "--end", "12"])
    assert result.exit_code == 0, result.output
    assert _files(out) == ["trainB/designed_00010400ms.jpg", "trainB/designed_00011400ms.jpg"]
    clash = CliRunner().invoke(cyclegan_main, base + ["--count", "2", "--every-seconds", "1"])
    assert clash.exit_code == 2 and "choose one of" in clash.output


def test_audio_running_past_the_video_is_not_truncation(tmp_path):
    video = write_h264(tmp_path / "long_audio.mkv", [texture(64, 96, 800 + i) for i in range(8)], 4, audio_seconds=2.8)
    summary = build_from_videos([video], tmp_path / "ds", "B", FrameOptions(sampling=Sampling(every_seconds=0.5)))
    assert summary.ok and summary.kept == 4, summary.format()


def test_keyframes_only_decodes_only_keyframes(videos):
    with VideoReader(videos["designed"]) as reader:  # GOP 2 s: keyframes at 0, 2, 4, ... 12 s
        samples = list(reader.sample(Sampling(every_seconds=3.0), keyframes_only=True))
        decoded = reader.decoded
    assert [round(s.time, 3) for s in samples] == [0.0, 4.0, 6.0, 10.0, 12.0]  # first keyframe at/after 0,3,6,9,12
    assert decoded == 7  # the keyframes 0, 2, ..., 12 s and nothing else
    with pytest.raises(ValueError, match="every_frames"):
        FrameOptions(sampling=Sampling(every_frames=3), keyframes_only=True)


@pytest.mark.parametrize("size", [(720, 1280), (362, 642)], ids=["hd-bt709", "sd-bt601"])
def test_colours_come_back(tmp_path, size):
    height, width = size
    video = write_h264(tmp_path / "flat.mp4", [solid(height, width, (200, 60, 30))] * 2, 2)
    with VideoReader(video) as reader:
        (sample, *_) = reader.sample(Sampling(every_seconds=1.0))
    got = np.asarray(sample.image)[height // 2, width // 2].astype(int)
    assert np.abs(got - np.array([200, 60, 30])).max() <= 4, got
