"""Bad input and faults for `cyclegan export` (issue 13: items 4, 8 and 12, and their relatives).

Real processes are killed with SIGKILL; full and read-only folders are tmpfs mounts (tests/faults.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from faults import leftovers, tmpfs
from PIL import Image
from safetensors.torch import save_file
from test_export import save_test_generator

from cyclegan.contract.card import CardError, GeneratorCard
from cyclegan.contract.tiles import is_companion
from cyclegan.generator_io import read_card
from export.cli import export as export_command
from export.pipeline import ExportError, _move_into_place

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--exporter", "torchscript", "--bench-size", "0"]


def run(*args: object):
    return CliRunner().invoke(export_command, [*map(str, args), *FAST], catch_exceptions=False)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def models_in(folder: Path) -> list[str]:
    """The model files of an export folder, without the seam-free tiles companions written next to them."""
    return sorted(p.name for p in folder.iterdir() if not is_companion(p))


def make_run(folder: Path, seed: int) -> Path:
    """A run folder with both generators, named by its preset like every run of it ("export test")."""
    for direction in ("A2B", "B2A"):
        save_test_generator(folder / "generators" / f"{direction}.safetensors", direction=direction, seed=seed)
    return folder


# --- item 4: a model is never replaced without --overwrite ---------------------------------------------------------
def test_two_runs_of_one_preset_never_overwrite_each_other(tmp_path: Path) -> None:
    first, second = make_run(tmp_path / "run1", seed=1), make_run(tmp_path / "run2", seed=2)
    models = tmp_path / "models"
    assert run(first, "--out", models).exit_code == 0
    exported = {p.name: md5(p) for p in models.iterdir()}  # models and their companions
    assert models_in(models) == ["export-test_A2B.onnx", "export-test_B2A.onnx"]

    result = run(second, "--out", models)
    assert result.exit_code == 2, result.output
    assert "export-test_A2B.onnx" in result.output and "already exists" in result.output
    assert "exported from run 'export test' at step 123" in result.output and "--overwrite" in result.output
    assert {p.name: md5(p) for p in models.iterdir()} == exported  # nothing replaced, nothing added

    named = run(second, "--out", models, "--name", "run2")
    assert named.exit_code == 0, named.output
    assert models_in(models) == ["export-test_A2B.onnx", "export-test_B2A.onnx", "run2_A2B.onnx", "run2_B2A.onnx"]
    assert all(md5(models / name) == digest for name, digest in exported.items())
    replaced = run(second, "--out", models, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert md5(models / "export-test_A2B.onnx") != exported["export-test_A2B.onnx"]


def test_a_model_that_appears_while_exporting_is_not_replaced(tmp_path: Path) -> None:
    tmp, final = tmp_path / ".m.onnx.1-deadbeef.tmp", tmp_path / "m.onnx"
    tmp.write_bytes(b"new")
    final.write_bytes(b"written meanwhile by another export")
    with pytest.raises(ExportError, match="appeared while exporting"):
        _move_into_place(tmp, final, overwrite=False)
    assert final.read_bytes() == b"written meanwhile by another export"
    _move_into_place(tmp, final, overwrite=True)
    assert final.read_bytes() == b"new" and not tmp.exists()


def test_names_in_any_script_stay_distinct_and_inside_out(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source)
    models = tmp_path / "models"
    for name in ("мультик", "../../escape", "写真"):
        assert run(source, "--out", models, "--name", name).exit_code == 0
    assert models_in(models) == sorted(["мультик_A2B.onnx", "escape_A2B.onnx", "写真_A2B.onnx"])
    assert not (tmp_path / "escape_A2B.onnx").exists()


# --- item 12: kill -9 during export leaves a temporary file that the next export removes ---------------------------
_STALL = """
import sys, time
sys.path.insert(0, {root!r})
from export import verify
def stall(*args, **kwargs):
    print("STALLED", flush=True)
    time.sleep(600)
verify.check_parity = stall
from export.cli import export
export(sys.argv[1:])
"""


def test_kill_during_export_leaves_a_temporary_that_the_next_export_removes(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source)
    models = tmp_path / "models"
    process = subprocess.Popen(
        [sys.executable, "-c", _STALL.format(root=str(ROOT)), str(source), "--out", str(models), *FAST],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "STALLED", process.stderr.read()
        os.kill(process.pid, signal.SIGKILL)  # the temporary file is written and being verified
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    stale = [p.name for p in models.iterdir()]
    assert len(stale) == 1 and stale[0].startswith(".export-test_A2B.onnx.") and stale[0].endswith(".tmp"), stale
    result = run(source, "--out", models)
    assert result.exit_code == 0, result.output
    assert "removed 1 temporary file(s)" in result.output
    assert sorted(p.name for p in models.iterdir()) == [
        "export-test_A2B.onnx",
        "export-test_A2B.stats.onnx",
        "export-test_A2B.tiles.onnx",
    ]


def test_a_live_exports_temporary_file_is_left_alone(tmp_path: Path) -> None:
    from cyclegan.contract.files import remove_stale_temporaries, temporary_name

    mine = temporary_name(tmp_path / "x.onnx")  # this (live) process's
    mine.write_bytes(b"being written")
    assert remove_stale_temporaries(tmp_path) == 0 and mine.exists()


# --- item 8: NaN weights are named as such --------------------------------------------------------------------------
def test_a_nan_generator_is_refused_naming_nan_weights(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source)
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as fh:
        metadata, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    first = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    save_file(tensors, str(source), metadata=metadata)
    result = run(source, "--out", tmp_path / "models")
    assert result.exit_code == 2, result.output
    assert "NaN or infinite values" in result.output and "other exporter" not in result.output
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())


# --- relatives: cards that would make export or serving allocate without bound -----------------------------------
def test_a_card_claiming_a_huge_network_is_refused_before_building_it(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source)
    from safetensors import safe_open

    with safe_open(str(source), framework="pt") as fh:
        metadata, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    card = json.loads(metadata["cyclegan"])
    card["ngf"] = 1_000_000  # building this network would need terabytes
    save_file(tensors, str(source), metadata={"cyclegan": json.dumps(card)})
    result = run(source, "--out", tmp_path / "models")
    assert result.exit_code == 2, result.output
    assert "do not match the architecture in its card" in result.output and "ngf=1000000" in result.output


@pytest.mark.parametrize("field", ["size_multiple", "min_side"])
def test_a_card_with_an_enormous_size_rule_is_refused(field: str) -> None:
    data = {**json.loads(GeneratorCard("resnet_6blocks").to_json()), field: 1_000_000}
    with pytest.raises(CardError, match=f"{field} must be at most 2048"):
        GeneratorCard.from_json(json.dumps(data), where="m.onnx")


# --- item 12: calibration images over the pixel limit, a full or read-only --out ---------------------------------
def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (what a decompression bomb shows before decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_one_gigapixel_calibration_image_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source)
    calib = tmp_path / "calib"
    calib.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(calib / "a.png")
    (calib / "b_huge.png").write_bytes(png_header(32768, 32768))
    result = run(source, "--out", tmp_path / "models", "--precision", "int8", "--calibration-dir", calib)
    assert result.exit_code == 2, result.output
    assert "b_huge.png" in result.output and "(1074 megapixels)" in result.output
    assert "the limit is 50.0 megapixels" in result.output
    assert "parity" not in result.output and not (tmp_path / "models").exists()  # refused before exporting


def test_export_into_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source, ngf=16)  # ~1 MB of weights: larger than the disk
    with tmpfs(tmp_path / "disk", "256k") as disk:
        result = run(source, "--out", disk / "models")
        assert result.exit_code == 1, result.output
        assert "no space left on the device" in result.output and "Traceback" not in result.output
        assert leftovers(disk) == [] and not list((disk / "models").iterdir())


def test_export_into_a_read_only_folder_is_refused_before_exporting(tmp_path: Path) -> None:
    source = tmp_path / "G.safetensors"
    save_test_generator(source)
    with tmpfs(tmp_path / "ro", "64k", read_only=True) as read_only:
        result = run(source, "--out", read_only / "models")
    assert result.exit_code == 2 and "--out" in result.output and "read-only" in result.output, result.output
    assert "parity" not in result.output  # refused before the export and its check ran
    assert read_card(source).step == 123
