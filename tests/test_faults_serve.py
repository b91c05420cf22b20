"""Bad input and faults for `cyclegan stylize` / `python -m serve stylize` (issue 13: item 1 and its relatives).

An output is never one of the inputs; a full or read-only --out is one line; nothing to do is said, not hidden.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from faults import leftovers, tmpfs
from onnx_models import make_test_model
from PIL import Image

from serve.cli import cli


def run(*args: object):
    return CliRunner().invoke(cli, ["stylize", *map(str, args)], catch_exceptions=False)


def png(path: Path, size: int = 24, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_model(tmp_path_factory.mktemp("model") / "m.onnx")


# --- item 1: an output is never one of the inputs ------------------------------------------------------------------
def test_an_input_file_is_never_replaced_by_its_output(model: Path, tmp_path: Path) -> None:
    photo = png(tmp_path / "same" / "ok.png")
    before = md5(photo)
    result = run(model, photo, "--out", tmp_path / "same", "--overwrite")
    assert result.exit_code == 2, result.output
    assert "would be written over the input itself" in result.output and "nothing was written" in result.output
    assert md5(photo) == before


def test_an_input_folder_that_is_out_says_why_nothing_is_done(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "album"
    photos = [png(folder / f"p{i}.png", seed=i) for i in range(2)]
    before = [md5(p) for p in photos]
    result = run(model, folder, "--out", folder, "--overwrite")
    assert result.exit_code == 2, result.output
    assert "is the --out folder itself" in result.output
    assert [md5(p) for p in photos] == before and sorted(p.name for p in folder.iterdir()) == ["p0.png", "p1.png"]


def test_an_output_over_another_input_is_refused(model: Path, tmp_path: Path) -> None:
    jpg = tmp_path / "src" / "x.jpg"
    jpg.parent.mkdir()
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(jpg)
    other = png(tmp_path / "out" / "x.png")  # the --format png output of x.jpg, and also an input
    before = md5(other)
    result = run(model, jpg, other, "--out", tmp_path / "out", "--format", "png", "--overwrite")
    assert result.exit_code == 2 and "would be written over another input" in result.output, result.output
    assert md5(other) == before


def test_an_input_folder_inside_out_is_stylized(model: Path, tmp_path: Path) -> None:
    """Files of an input folder that lies inside --out are inputs (they used to be skipped as outputs: 0 images)."""
    out = tmp_path / "work"
    png(out / "photos" / "a.png")
    result = run(model, out / "photos", "--out", out)
    assert result.exit_code == 0 and "stylized 1 image" in result.output, result.output
    assert (out / "a.png").is_file()


def test_out_inside_an_input_folder_is_not_read_back(model: Path, tmp_path: Path) -> None:
    album = tmp_path / "album"
    png(album / "a.png")
    for _ in range(2):
        result = run(model, album, "--out", album / "styled", "--overwrite")
        assert result.exit_code == 0 and "stylized 1 image" in result.output, result.output
    assert sorted(p.relative_to(album).as_posix() for p in album.rglob("*.png")) == ["a.png", "styled/a.png"]


def test_inputs_without_images_or_videos_say_so(model: Path, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("no media")
    result = run(model, tmp_path / "docs", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "nothing to do" in result.output and "1 ignored" in result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["--threads", "100000"], "100000 is not in the range 1<=x<=1024"),
        (["--max-pixels", "0"], "0 is not in the range x>=1"),
        (["--crf", "99"], "99 is not in the range 0<=x<=51"),
        (["--format", "gif"], "'gif' is not one of"),
    ],
)
def test_bad_options_are_usage_errors(model: Path, tmp_path: Path, args: list[str], words: str) -> None:
    result = run(model, png(tmp_path / "a.png"), "--out", tmp_path / "out", *args)
    assert result.exit_code == 2 and words in result.output, result.output
    assert not (tmp_path / "out").exists()


# --- item 12's relatives for serving: a full or read-only --out -------------------------------------------------------
def test_read_only_out_is_refused_before_any_work(model: Path, tmp_path: Path) -> None:
    photo = png(tmp_path / "a.png")
    with tmpfs(tmp_path / "ro", "64k", read_only=True) as read_only:
        result = run(model, photo, "--out", read_only / "styled")
    assert result.exit_code == 2 and "--out" in result.output and "read-only" in result.output, result.output


def test_a_full_disk_stops_the_run_with_one_line_and_no_temporary_files(model: Path, tmp_path: Path) -> None:
    album = tmp_path / "album"
    for i in range(4):
        png(album / f"p{i}.png", size=160, seed=i)  # ~77 kB each: the first fits a 96 kB disk, the second does not
    with tmpfs(tmp_path / "disk", "96k") as disk:
        result = run(model, album, "--out", disk / "styled", "-q")
        assert result.exit_code == 1, result.output
        assert "no space left on the device" in result.output
        assert "stopped early, 2 files not started" in result.output and "Traceback" not in result.output
        assert leftovers(disk) == []
        assert [p.name for p in (disk / "styled").iterdir()] == ["p0.png"]


# --- unclear (fixed on main, regression test here): a model whose output is half the size --------------------------
def test_a_model_that_halves_the_image_is_refused_not_served(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper
    from onnx_models import IR_VERSION, OPSET, make_card

    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["input"], ["output"], kernel_shape=[2, 2], strides=[2, 2])],
        "half",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3, "h2", "w2"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"cyclegan": make_card().to_json()})
    onnx.save(model, str(tmp_path / "half.onnx"))
    result = run(tmp_path / "half.onnx", png(tmp_path / "a.png", size=32), "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert (
        "returned (1, 3, 16, 16) for an input of (1, 3, 32, 32)" in result.output
        and "keep the image size" in result.output
    )
    assert not (tmp_path / "out" / "a.png").exists()
