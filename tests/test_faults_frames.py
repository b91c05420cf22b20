"""Bad input and faults for `cyclegan frames` / `cyclegan images` (issue 13: items 5 and 12, the unclear ones).

Full and read-only disks are real tmpfs mounts (tests/faults.py); crashes are files cut where a crash cuts them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from faults import fill, leftovers, tmpfs
from media import texture, write_h264
from PIL import Image

from cyclegan.cli import main as cyclegan_main
from cyclegan.contract.files import FolderBusyError, OutputError, append_lines, safe_stem
from cyclegan.frames.store import DatasetStore

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str):
    """The real `cyclegan` click group in-process; an exception that escapes it fails the test (no tracebacks)."""
    return CliRunner().invoke(cyclegan_main, [str(a) for a in args], catch_exceptions=False)


def photos(folder: Path, n: int = 3, size: int = 48, *, fmt: str = "png", noise: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"p{i}.{fmt}"
        rng = np.random.default_rng(i)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8) if noise else texture(size, size, 10 + i)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def video(path: Path, seconds: int = 5, fps: int = 5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_h264(path, [texture(64, 96, 100 + i // fps) for i in range(seconds * fps)], fps=fps)


def manifest_lines(root: Path) -> list[str]:
    return (root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- item 12: a full or read-only --out is one line, and nothing half-written stays --------------------------------
def test_images_into_a_full_disk_stop_with_one_line_and_leave_no_temporary_file(tmp_path: Path) -> None:
    src = photos(tmp_path / "src", n=3, size=200, noise=True)  # ~120 kB PNGs: the first one does not fit
    with tmpfs(tmp_path / "disk", "64k") as disk:
        result = run("images", src[0].parent, "--out", disk / "ds", "--domain", "A", "--format", "png")
        assert result.exit_code == 1, result.output
        assert "error: cannot write" in result.output and "no space left on the device" in result.output
        assert "Traceback" not in result.output
        assert leftovers(disk) == []  # no 0-byte .tmp, no partial image


def test_frames_into_a_full_disk_keep_whole_manifest_lines(tmp_path: Path) -> None:
    clip = video(tmp_path / "clip.mp4", seconds=5)
    with tmpfs(tmp_path / "disk", "64k") as disk:
        (disk / "ds").mkdir()
        fill(disk, leave=12 * 1024)  # room for a few frames, not for five
        result = run("frames", clip, "--out", disk / "ds", "--domain", "B", "--no-progress")
        assert result.exit_code == 1, result.output
        assert "no space left on the device" in result.output and "Traceback" not in result.output
        assert leftovers(disk) == []
        lines = manifest_lines(disk / "ds") if (disk / "ds" / "manifest.jsonl").exists() else []
        assert all(json.loads(line)["kind"] == "frame" for line in lines)  # whole records only


@pytest.mark.parametrize("command", ["images", "frames"])
def test_read_only_out_is_refused_before_any_work(tmp_path: Path, command: str) -> None:
    source = photos(tmp_path / "src")[0].parent if command == "images" else video(tmp_path / "v" / "clip.mp4")
    with tmpfs(tmp_path / "ro", "64k", read_only=True) as read_only:
        result = run(command, source, "--out", read_only / "ds", "--domain", "A")
    assert result.exit_code == 2, result.output
    assert "not writable: the file system is read-only" in result.output


def test_out_below_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = run("images", photos(tmp_path / "src")[0].parent, "--out", tmp_path / "afile" / "ds", "--domain", "A")
    assert result.exit_code == 2 and "part of the path is a file" in result.output, result.output


# --- item 5: appends are whole lines; a line cut by a crash is repaired without losing good records -----------------
def test_append_on_a_full_disk_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "64k") as disk:
        target = disk / "manifest.jsonl"
        append_lines(target, [json.dumps({"kind": "frame", "n": 1})])
        before = target.read_bytes()
        fill(disk)  # what is left is the slack of the file's last page
        with pytest.raises(OutputError, match="no space left") as info:
            append_lines(target, [json.dumps({"kind": "frame", "pad": "x" * 20000})])  # larger than the slack
        assert info.value.disk_wide
        assert target.read_bytes() == before  # not half a line


def test_a_record_cut_by_a_crash_is_repaired_on_the_next_run(tmp_path: Path) -> None:
    src = photos(tmp_path / "src", n=4)
    for path in src[2:]:
        path.rename(tmp_path / path.name)  # imported later
    ds = tmp_path / "ds"
    assert run("images", tmp_path / "src", "--out", ds, "--domain", "A").exit_code == 0
    good = manifest_lines(ds)
    assert len(good) == 2
    with open(ds / "manifest.jsonl", "a", encoding="utf-8") as handle:  # what kill -9 mid-append leaves
        handle.write(good[0][: len(good[0]) // 2])
    (tmp_path / "p2.png").rename(tmp_path / "src" / "p2.png")
    second = run("images", tmp_path / "src", "--out", ds, "--domain", "A")
    assert second.exit_code == 0, second.output
    assert "repaired" in second.output and "cut short" in second.output
    lines = manifest_lines(ds)
    assert lines[:2] == good and len(lines) == 3  # both good records kept, the new one whole on its own line
    (tmp_path / "p3.png").rename(tmp_path / "src" / "p3.png")
    third = run("images", tmp_path / "src", "--out", ds, "--domain", "A")  # the run after that, which used to die
    assert third.exit_code == 0, third.output
    assert [json.loads(line)["file"] for line in manifest_lines(ds)] == [f"trainA/p{i}.jpg" for i in range(4)]


def test_a_line_glued_to_a_cut_record_keeps_the_complete_record(tmp_path: Path) -> None:
    """What earlier versions appended after a cut line: the complete record after it is kept, not deleted."""
    src = photos(tmp_path / "src", n=2)
    ds = tmp_path / "ds"
    assert run("images", src[0].parent, "--out", ds, "--domain", "A").exit_code == 0
    first, second = manifest_lines(ds)
    (ds / "manifest.jsonl").write_text(first[:40] + second + "\n", encoding="utf-8")
    result = run("images", src[0].parent, "--out", ds, "--domain", "A")
    assert result.exit_code == 0, result.output
    assert "kept the complete record" in result.output
    assert second in manifest_lines(ds)
    assert sorted(p.name for p in (ds / "trainA").iterdir()) == ["p0.jpg", "p1.jpg"]


# --- item 12: a manifest line that is JSON but no record, a corrupt dataset.json: one line -------------------------
@pytest.mark.parametrize(
    "line, words",
    [
        ("[1, 2]", "not a record (a JSON object), it is list"),
        ("42", "it is int"),
        ('"frame"', "it is str"),
        ("null", "it is NoneType"),
        ('{"kind": "frame", "domain": "A", "source_id": 7}', "'source_id' has the wrong type"),
        ('{"kind": "frame", "domain": "A", "source_id": "x", "dhash": "zz"}', "not a 64-bit hex hash"),
        ('{"kind": "frame", "domain": ["A"], "source_id": "x"}', "'domain' has the wrong type"),
        ("this is not json at all", "holds no complete one"),
    ],
)
def test_a_manifest_line_that_is_no_record_is_one_line(tmp_path: Path, line: str, words: str) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "manifest.jsonl").write_text(line + "\n" + json.dumps({"kind": "source", "domain": "A"}) + "\n")
    result = run("images", photos(tmp_path / "src")[0].parent, "--out", ds, "--domain", "A")
    assert result.exit_code == 2, result.output
    assert "manifest.jsonl:1" in result.output and words in result.output, result.output


def test_a_manifest_record_pointing_outside_the_dataset_deletes_nothing(tmp_path: Path) -> None:
    victim = tmp_path / "precious.jpg"
    victim.write_bytes(b"keep me")
    ds = tmp_path / "ds"
    ds.mkdir()
    clip = video(tmp_path / "clip.mp4", seconds=2)
    from cyclegan.frames.store import content_id

    record = {"kind": "frame", "domain": "B", "source_id": content_id(clip), "file": "../precious.jpg"}
    (ds / "manifest.jsonl").write_text(json.dumps(record) + "\n")
    result = run("frames", clip, "--out", ds, "--domain", "B", "--no-progress")  # would forget (delete) its files
    assert result.exit_code == 2 and "must be a path inside the dataset" in result.output, result.output
    assert victim.read_bytes() == b"keep me"


@pytest.mark.parametrize(
    "content, words",
    [
        (b"{not json", "not readable JSON"),
        (b"[1, 2, 3]", "expected an object"),
        (b'{"domains": ["A", "B"]}', "expected an object"),
        (b"\xff\xfe\x00garbage", "not readable JSON"),
        (None, "is a folder"),
    ],
)
def test_a_corrupt_dataset_json_is_one_line(tmp_path: Path, content: bytes | None, words: str) -> None:
    ds = tmp_path / "ds"
    ds.mkdir()
    if content is None:
        (ds / "dataset.json").mkdir()
    else:
        (ds / "dataset.json").write_bytes(content)
    result = run("images", photos(tmp_path / "src")[0].parent, "--out", ds, "--domain", "A", "--name", "photo")
    assert result.exit_code == 2, result.output
    assert "dataset.json" in result.output and words in result.output, result.output


def test_a_manifest_that_is_a_folder_or_not_utf8_is_one_line(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    (ds / "manifest.jsonl").mkdir(parents=True)
    result = run("images", photos(tmp_path / "src")[0].parent, "--out", ds, "--domain", "A")
    assert result.exit_code == 2 and "is a folder" in result.output, result.output
    (ds / "manifest.jsonl").rmdir()
    (ds / "manifest.jsonl").write_bytes(b'{"kind": "fr\xff\xfe"}\n')
    result = run("images", photos(tmp_path / "src")[0].parent, "--out", ds, "--domain", "A")
    assert result.exit_code == 2 and "not UTF-8" in result.output, result.output


# --- unclear: names in any script keep their stem ------------------------------------------------------------------
def test_non_ascii_names_keep_a_readable_stem(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(texture(48, 48, 1)).save(src / "фото с пробелом.jpg")
    Image.fromarray(texture(48, 48, 2)).save(src / "写真 2024.png")
    ds = tmp_path / "ds"
    assert run("images", src, "--out", ds, "--domain", "A").exit_code == 0
    assert sorted(p.name for p in (ds / "trainA").iterdir()) == sorted(["фото_с_пробелом.jpg", "写真_2024.jpg"])
    video(tmp_path / "клип (финал).mp4", seconds=1)
    assert run("frames", tmp_path / "клип (финал).mp4", "--out", ds, "--domain", "B", "--no-progress").exit_code == 0
    assert [p.name for p in (ds / "trainB").iterdir()] == ["клип_финал_00000000ms.jpg"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("фото с пробелом", "фото_с_пробелом"),
        ("../../etc/passwd", "etc_passwd"),
        ("-rf --no-preserve-root", "rf_--no-preserve-root"),
        ("a\u202egnp.exe", "a_gnp_exe"),  # a right-to-left override cannot disguise the name
        ("emoji 🎬 clip", "emoji_clip"),
        ("e\u0301te\u0301", "été"),  # decomposed accents are composed (NFC)
        ("...", "fallback"),
        ("", "fallback"),
        ("\u0301abc", "abc"),  # no stem starts with a combining mark
    ],
)
def test_safe_stem(text: str, expected: str) -> None:
    assert safe_stem(text, "fallback") == expected


def test_long_stems_are_cut_on_a_character_boundary() -> None:
    stem = safe_stem("я" * 300, "x")
    assert len(stem.encode()) <= 100 and set(stem) == {"я"}


# --- unclear: --start past the end is an error, and what the dataset had stays ------------------------------------
def test_start_past_the_end_of_the_video_fails_and_keeps_earlier_frames(tmp_path: Path) -> None:
    clip = video(tmp_path / "clip.mp4", seconds=5)
    ds = tmp_path / "ds"
    assert run("frames", clip, "--out", ds, "--domain", "B", "--no-progress").exit_code == 0
    before = sorted(p.name for p in (ds / "trainB").iterdir())
    assert before
    result = run("frames", clip, "--out", ds, "--domain", "B", "--start", "100", "--no-progress")
    assert result.exit_code == 1, result.output
    assert "--start 100 s is at or past the end of the video (5.00 s)" in result.output
    assert "0 examined" in result.output and "1 failed" in result.output
    assert sorted(p.name for p in (ds / "trainB").iterdir()) == before


@pytest.mark.parametrize(
    "option, value", [("--max-dark", "nan"), ("--min-std", "inf"), ("--every-seconds", "inf"), ("--start", "nan")]
)
def test_non_finite_numbers_are_refused(tmp_path: Path, option: str, value: str) -> None:
    result = run("frames", tmp_path / "clip.mp4", "--out", tmp_path / "ds", "--domain", "B", option, value)
    assert result.exit_code == 2 and "is not a finite number" in result.output, result.output
    assert not (tmp_path / "ds").exists()


# --- unclear: a 121-megapixel PNG: refused at the limit, imported when the limit is raised, no raw warning ---------
def test_huge_png_is_refused_by_default_and_imported_with_max_pixels(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    Image.new("L", (11000, 11000), 128).save(src / "scan.png", optimize=True)  # a few kB, 121 megapixels
    ds = tmp_path / "ds"
    result = run("images", src, "--out", ds, "--domain", "A")
    assert result.exit_code == 1
    assert "over the limit of 50.0 megapixels" in result.output and "scan.png" in result.output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run("images", src, "--out", ds, "--domain", "A", "--max-pixels", "130000000", "--resize", "64")
    assert result.exit_code == 0, result.output
    assert not [w for w in caught if "DecompressionBomb" in type(w.message).__name__]
    with Image.open(ds / "trainA" / "scan.jpg") as image:
        assert image.size == (64, 64)


# --- relatives: the dataset's own images are never inputs; two writers never share a dataset -----------------------
def test_images_inside_the_dataset_are_not_imported_over_themselves(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    own = photos(ds / "trainA", n=2, fmt="jpg")  # copied in by hand
    before = {p.name: md5(p) for p in own}
    result = run("images", ds / "trainA", "--out", ds, "--domain", "A", "--resize", "16")
    assert result.exit_code == 1, result.output
    assert "already inside the dataset" in result.output
    assert {p.name: md5(p) for p in (ds / "trainA").iterdir()} == before


def test_a_second_writer_into_one_dataset_is_refused(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    src = photos(tmp_path / "src")[0].parent
    with DatasetStore(ds):
        with pytest.raises(FolderBusyError, match=f"pid {os.getpid()}"):
            DatasetStore(ds)
        process = subprocess.run(
            [sys.executable, "-m", "cyclegan", "images", str(src), "--out", str(ds), "--domain", "A"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert process.returncode == 2, process.stderr
        assert "being written by another process" in process.stderr and "Traceback" not in process.stderr
    assert run("images", src, "--out", ds, "--domain", "A").exit_code == 0  # released
    assert np.asarray(Image.open(ds / "trainA" / "p0.jpg")).shape == (48, 48, 3)


# --- relatives found by the properties (tests/test_properties.py): every cut of a video, oversized frames --------
@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("clips")
    frames = [texture(32, 48, 10 + i // 5) for i in range(15)]
    return {s: write_h264(folder / f"c{s}", frames, fps=5, gop=5).read_bytes() for s in (".mp4", ".mkv")}


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_every_cut_of_a_video_gives_frames_or_one_video_error(
    clips: dict[str, bytes], tmp_path: Path, suffix: str
) -> None:
    """An interrupted download at any byte: some frames and an error, or an error; a seek into the missing part of
    an MKV used to raise av's PermissionError."""
    from cyclegan.frames.video import Sampling, VideoError, VideoReader

    data = clips[suffix]
    outcomes = {"frames": 0, "error": 0}
    for cut in range(0, len(data), 37):
        path = tmp_path / f"cut{suffix}"
        path.write_bytes(data[:cut])
        for sampling in (Sampling(count=3), Sampling(every_seconds=0.5), Sampling(every_frames=4, start=0.5)):
            try:
                with VideoReader(path) as reader:
                    list(reader.sample(sampling))
                outcomes["frames"] += 1
            except VideoError as exc:
                assert str(path) in str(exc)
                outcomes["error"] += 1
    assert outcomes["error"] > 0
    print(f"{suffix}: {sum(outcomes.values())} cuts x samplings: {outcomes}")


def test_a_video_with_frames_over_the_pixel_limit_is_refused(tmp_path: Path) -> None:
    import av

    path = tmp_path / "huge.avi"
    with av.open(str(path), "w") as container:  # one 7072x7072 MJPEG frame: 50.01 megapixels
        stream = container.add_stream("mjpeg", rate=1)
        stream.width = stream.height = 7072
        stream.pix_fmt = "yuvj420p"
        frame = av.VideoFrame(7072, 7072, "yuvj420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    result = run("frames", path, "--out", tmp_path / "ds", "--domain", "B", "--no-progress")
    assert result.exit_code == 1, result.output
    assert "7072x7072 = 50.0 megapixels, over the limit of 50.0 megapixels" in result.output
