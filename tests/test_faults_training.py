"""Bad input and faults for training (issue 13: items 2, 3, 8, 9 and 12).

A shared two-step run (checkpoints at steps 1 and 2) is copied for each test that needs a finished run; a full
disk is a real tmpfs (tests/faults.py); a truncated JPEG is a real JPEG cut where an interrupted copy cuts it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from faults import tmpfs
from PIL import Image
from synthetic import make_permuted_dataset, random_scene

from cyclegan.config import ConfigError, load_config
from cyclegan.contract.files import FolderLock
from cyclegan.generator_io import read_card
from cyclegan.training.checkpoint import list_checkpoints
from cyclegan.training.cli import train as train_cmd

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model.generator=resnet_6blocks",
    "model.ngf=8",
    "model.ndf=8",
    "data.load_size=32",
    "data.crop_size=32",
    "data.num_workers=0",
    "data.test_images=0",
    "train.log_with=none",
    "train.log_every=1",
    "train.save_every=1",
    "train.keep_last=2",
    "train.mixed_precision=no",
]


def train(dataset: Path, run_dir: Path, *extra: str):
    args = ["--no-progress", f"data.root={dataset}", f"train.output_dir={run_dir}", *TINY, *extra]
    return CliRunner().invoke(train_cmd, args, catch_exceptions=False)


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_permuted_dataset(tmp_path_factory.mktemp("ds") / "ds", n_train=4, n_test=2, size=32)


@pytest.fixture(scope="module")
def finished(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    result = train(dataset, run_dir, "train.max_steps=2")
    assert result.exit_code == 0, result.output
    assert [s for s, _ in list_checkpoints(run_dir / "checkpoints")] == [1, 2]
    return run_dir


@pytest.fixture
def run_copy(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


# --- item 2: a fresh run never mixes into a folder that holds a run ----------------------------------------------
def test_a_fresh_run_in_a_run_folder_refuses_and_changes_nothing(dataset: Path, run_copy: Path) -> None:
    before = snapshot(run_copy)
    result = train(dataset, run_copy, "train.max_steps=2", "model.ngf=4")
    assert result.exit_code == 2, result.output
    assert f"train.output_dir={run_copy} already holds a run" in result.output
    assert "checkpoints up to step 2" in result.output and "--resume latest" in result.output
    assert snapshot(run_copy) == before


# --- item 3: a resume that cannot fit is refused before anything is written, in one line --------------------------
@pytest.mark.parametrize(
    "override, words",
    [
        ("model.ngf=16", "model.ngf=8 (now 16)"),
        ("model.generator=resnet_9blocks", "model.generator='resnet_6blocks' (now 'resnet_9blocks')"),
        ("data.crop_size=24", "data.crop_size=32 (now 24)"),
        ("train.ema_decay=0.99", "train.ema_decay=None (now 0.99)"),
    ],
)
def test_an_incompatible_resume_writes_nothing_and_says_what_differs(
    dataset: Path, run_copy: Path, override: str, words: str
) -> None:
    before = snapshot(run_copy)
    result = train(dataset, run_copy, "train.max_steps=3", "--resume", "latest", override)
    assert result.exit_code == 2, result.output
    assert words in result.output and "nothing was changed" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "size mismatch" not in result.output
    assert snapshot(run_copy) == before


# --- item 8: non-finite numbers are refused at load; diverged losses stop before anything is saved -----------------
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e999"])
def test_non_finite_config_numbers_are_refused_in_files_and_overrides(tmp_path: Path, value: str) -> None:
    preset = tmp_path / "preset.yaml"
    preset.write_text(f"optim:\n  lr: {value}\nloss:\n  lambda_a: 10\n")
    with pytest.raises(ConfigError, match="optim.lr: expected a finite number"):
        load_config(preset)
    for key in ("loss.lambda_a", "model.init_gain", "train.ema_decay", "optim.warmup_epochs"):
        with pytest.raises(ConfigError, match=f"{key}: expected a finite number"):
            load_config(None, [f"{key}={value}"])


def test_diverged_losses_stop_with_exit_1_and_keep_the_last_good_checkpoint(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = train(dataset, run_dir, "train.max_steps=6", "optim.lr=1e30", "optim.beta1=0", "optim.beta2=0")
    assert result.exit_code == 1, result.output
    assert "training diverged at step" in result.output and "non-finite losses" in result.output
    steps = [s for s, _ in list_checkpoints(run_dir / "checkpoints")]
    diverged_at = int(result.output.split("training diverged at step ")[1].split(":")[0])
    assert steps and steps[-1] < diverged_at, (steps, result.output)
    assert f"nothing was saved after checkpoint step {steps[-1]}" in result.output
    for direction in ("A2B", "B2A"):  # the generators are the last good ones, not NaN ones
        assert read_card(run_dir / "generators" / f"{direction}.safetensors").step == steps[-1]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(v) for record in metrics for v in record.values())


# --- item 9: a truncated JPEG stops the run before the first step, with any number of loader workers --------------
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_truncated_jpeg_is_found_before_the_first_step(dataset: Path, tmp_path: Path, workers: str) -> None:
    data = Path(shutil.copytree(dataset, tmp_path / "ds"))
    Image.fromarray(random_scene(np.random.default_rng(5), 64)).save(tmp_path / "full.jpg", quality=95)
    whole = (tmp_path / "full.jpg").read_bytes()
    (data / "trainB" / "cut.jpg").write_bytes(whole[: len(whole) * 2 // 3])  # a copy interrupted at 2/3
    with Image.open(data / "trainB" / "cut.jpg") as image:
        assert image.size == (64, 64)  # the header is fine: only decoding finds the problem
    result = train(data, tmp_path / "run", "train.max_steps=2", f"data.num_workers={workers}")
    assert result.exit_code == 2, result.output
    assert "cut.jpg" in result.output and "truncated" in result.output
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "config.yaml").exists()


# --- item 12: a damaged newest checkpoint gives way to the one before, with a warning ------------------------------
def test_a_truncated_checkpoint_falls_back_to_the_previous_one(dataset: Path, run_copy: Path) -> None:
    weights = run_copy / "checkpoints" / "step_00000002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # COMPLETE is still there
    result = train(dataset, run_copy, "train.max_steps=3", "--resume", "latest")
    assert result.exit_code == 0, result.output
    assert "checkpoint" in result.output and "step_00000002 does not load" in result.output
    assert "trying the one before it" in result.output and "done: step 3" in result.output
    assert [s for s, _ in list_checkpoints(run_copy / "checkpoints")][-1] == 3


# --- item 12: data.preprocess=none with batches of images of several sizes -------------------------------------
def test_uncropped_images_of_several_sizes_with_batch_2_are_refused_before_the_first_step(
    dataset: Path, tmp_path: Path
) -> None:
    data = Path(shutil.copytree(dataset, tmp_path / "ds"))
    Image.fromarray(random_scene(np.random.default_rng(1), 48)).save(data / "trainA" / "bigger.png")
    result = train(data, tmp_path / "run", "train.max_steps=2", "data.preprocess=none", "train.batch_size=2")
    assert result.exit_code == 2, result.output
    assert "data.preprocess=none gives the A images 2 different sizes" in result.output
    assert "bigger.png" in result.output and "train.batch_size=1" in result.output
    ok = train(data, tmp_path / "run1", "train.max_steps=1", "data.preprocess=none", "train.batch_size=1")
    assert ok.exit_code == 0, ok.output


# --- item 12: a full disk during a checkpoint: one line, the previous checkpoint kept, resumable ----------------
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(dataset: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "7m") as disk:  # one ~4.2 MB checkpoint fits with the generators, two do not
        run_dir = disk / "run"
        result = train(dataset, run_dir, "train.max_steps=3")
        assert result.exit_code == 1, result.output
        assert "cannot write checkpoint step 2" in result.output and "Traceback" not in result.output
        assert "the last complete checkpoint is step_00000001" in result.output
        assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step_00000001"]  # no .tmp-step_ left
        assert read_card(run_dir / "generators" / "A2B.safetensors").step == 1
        assert not [p for p in run_dir.rglob("*.tmp")]
        subprocess.run(["mount", "-o", "remount,size=32m", str(disk)], check=True)  # space freed
        resumed = train(dataset, run_dir, "train.max_steps=3", "--resume", "latest")
        assert resumed.exit_code == 0, resumed.output
        assert [s for s, _ in list_checkpoints(run_dir / "checkpoints")] == [2, 3]


# --- relatives: two runs in one folder at once; a run folder below a file -----------------------------------------
def test_a_second_training_in_a_busy_folder_is_refused(dataset: Path, run_copy: Path) -> None:
    with FolderLock(run_copy, "training"):
        result = train(dataset, run_copy, "train.max_steps=3", "--resume", "latest")
    assert result.exit_code == 2 and "being written by another process" in result.output, result.output


def test_an_output_dir_below_a_file_is_one_line(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = train(dataset, tmp_path / "afile" / "run", "train.max_steps=1")
    assert result.exit_code == 2 and "train.output_dir" in result.output and "is a file" in result.output


# --- relatives: config values that used to fail at the first step or as an out-of-memory ---------------------------
@pytest.mark.parametrize(
    "overrides, words",
    [
        (["train.output_dir="], "train.output_dir must name the run folder"),
        (["data.root= "], "data.root must name the dataset folder"),
        (["model.ngf=100000"], "model.ngf must be at most 1024"),
        (["data.load_size=100000", "data.crop_size=100000"], "data.load_size must be at most 8192"),
        (["loss.pool_size=1000000000"], "loss.pool_size must be at most 1000"),
        (["model.n_layers_d=11"], "model.n_layers_d must be at most 10"),
    ],
)
def test_config_values_beyond_any_real_run_are_refused(overrides: list[str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_config(None, [*TINY, *overrides])


def test_a_discriminator_too_deep_for_the_crop_stops_before_the_first_step(dataset: Path, tmp_path: Path) -> None:
    result = train(dataset, tmp_path / "run", "model.discriminator=n_layers", "model.n_layers_d=6")
    assert result.exit_code == 2, result.output
    assert "cannot train on 32x32 crops" in result.output and "model.n_layers_d=6" in result.output
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_an_incompatible_resume_from_a_checkpoint_path_writes_nothing(dataset: Path, run_copy: Path) -> None:
    before = snapshot(run_copy)
    checkpoint = run_copy / "checkpoints" / "step_00000001"
    result = train(dataset, run_copy, "train.max_steps=3", "--resume", str(checkpoint), "model.ngf=16")
    assert result.exit_code == 2 and "model.ngf=8 (now 16)" in result.output, result.output
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("content", [b"{", b"[1]", b'{"domains": 5}', b"\xff\xfe"])
def test_a_corrupt_dataset_json_stops_training_in_one_line(dataset: Path, tmp_path: Path, content: bytes) -> None:
    data = Path(shutil.copytree(dataset, tmp_path / "ds"))
    (data / "dataset.json").write_bytes(content)
    result = train(data, tmp_path / "run", "train.max_steps=1")
    assert result.exit_code == 2 and "dataset.json" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
