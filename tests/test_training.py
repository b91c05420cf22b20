"""cyclegan.training: fast unit tests and the checks that must fail before the first step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from synthetic import make_permuted_dataset

from cyclegan.training import precision
from cyclegan.training.checkpoint import MARKER, list_checkpoints, resume_candidates
from cyclegan.training.cli import train as train_cmd
from cyclegan.training.errors import TrainingSetupError
from cyclegan.training.nets import Ema
from cyclegan.training.state import EpochShuffleSampler, ProcessPools, TrainerState

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model.generator=resnet_6blocks",
    "model.ngf=8",
    "model.ndf=8",
    "data.load_size=32",
    "data.crop_size=32",
    "data.num_workers=0",
    "data.test_images=2",
    "train.log_with=none",
    "train.log_every=1",
]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_permuted_dataset(tmp_path / "ds", n_train=4, n_test=2, size=32)


def _run_cli(*args: str):
    return CliRunner().invoke(train_cmd, list(args), catch_exceptions=False)


# --- fails before the first step, exit code 2, a message that says what to fix ----------------------
def test_empty_domain_folder_fails_with_exit_2(dataset, tmp_path):
    for path in (dataset / "trainB").iterdir():
        path.unlink()
    result = _run_cli(
        "--config",
        str(REPO / "configs/tiny_cpu.yaml"),
        f"data.root={dataset}",
        f"train.output_dir={tmp_path / 'run'}",
        *TINY,
    )
    assert result.exit_code == 2
    assert "trainB" in result.output and "holds no images" in result.output
    assert not (tmp_path / "run").exists()  # nothing was started


def test_unreadable_image_is_named(dataset, tmp_path):
    (dataset / "trainA" / "broken.png").write_bytes(b"not a png at all")
    result = _run_cli(f"data.root={dataset}", f"train.output_dir={tmp_path / 'run'}", *TINY)
    assert result.exit_code == 2
    assert "broken.png" in result.output


def test_squeezed_frames_are_named_once_and_training_goes_on(dataset, tmp_path):
    """16:9 frames under the paper's resize_and_crop: one warning line that names the fix, then the run."""
    from PIL import Image

    for path in (dataset / "trainB").iterdir():
        Image.open(path).resize((64, 36)).save(path)
    args = [f"data.root={dataset}", *TINY, "train.max_steps=1", "data.test_images=0"]
    result = _run_cli(*args, f"train.output_dir={tmp_path / 'squeezed'}")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: data.preprocess")]
    assert warnings == [
        "warning: data.preprocess=resize_and_crop squeezes the trainB images (typically 64x36) into 32x32 squares, "
        "so shapes are 1.78 times narrower in training than in use: data.preprocess=scale_shorter_side_and_crop "
        "keeps their proportions"
    ]
    kept = _run_cli(*args, f"train.output_dir={tmp_path / 'kept'}", "data.preprocess=scale_shorter_side_and_crop")
    assert kept.exit_code == 0 and "warning: data.preprocess" not in kept.output


def test_a_second_run_in_the_same_process_chooses_its_own_precision(dataset, tmp_path):
    """Accelerate keeps one state per process; a second in-process run with another precision still starts."""
    args = [f"data.root={dataset}", *TINY, "train.max_steps=1", "data.test_images=0"]
    for mode in ("no", "bf16"):
        result = _run_cli(*args, f"train.output_dir={tmp_path / mode}", f"train.mixed_precision={mode}")
        assert result.exit_code == 0, result.output
        assert (tmp_path / mode / "generators").is_dir()


def test_crop_size_not_allowed_by_unet(dataset, tmp_path):
    result = _run_cli(
        f"data.root={dataset}",
        f"train.output_dir={tmp_path / 'run'}",
        *TINY,
        "model.generator=unet_256",
        "data.load_size=72",
        "data.crop_size=64",
    )
    assert result.exit_code == 2
    assert "data.crop_size=64" in result.output and "multiple of 256" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed on CUDA")
def test_fp16_on_cpu_is_refused(dataset, tmp_path):
    result = _run_cli(
        f"data.root={dataset}", f"train.output_dir={tmp_path / 'run'}", *TINY, "train.mixed_precision=fp16"
    )
    assert result.exit_code == 2
    assert "fp16 needs a CUDA GPU" in result.output


def test_bad_key_and_missing_resume(dataset, tmp_path):
    result = _run_cli(f"data.root={dataset}", "train.max_stpes=3")
    assert result.exit_code == 2 and "train.max_steps" in result.output  # did-you-mean from the config
    result = _run_cli("--resume", "latest", f"data.root={dataset}", f"train.output_dir={tmp_path / 'run'}", *TINY)
    assert result.exit_code == 2 and "no complete checkpoint" in result.output


def test_train_accel_exit_code_2_without_traceback(dataset, tmp_path):
    """The real entry point in a real process: a clear one-line error, no traceback."""
    (dataset / "trainA" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train_accel.py"),
            "--config",
            str(REPO / "configs/tiny_cpu.yaml"),
            f"data.root={dataset}",
            f"train.output_dir={tmp_path / 'run'}",
            *TINY,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "broken.jpg" in proc.stderr


# --- building blocks ---------------------------------------------------------------------------
def test_mixed_precision_resolution(monkeypatch):
    monkeypatch.setattr(precision.torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "fma"})
    assert precision.resolve_mixed_precision("auto", use_cuda=False) == "no"
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert precision.resolve_mixed_precision("auto", use_cuda=False) == "no"  # measured slower than fp32
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    assert precision.resolve_mixed_precision("auto", use_cuda=False) == "bf16"
    assert precision.resolve_mixed_precision("bf16", use_cuda=False) == "bf16"
    assert precision.resolve_mixed_precision("no", use_cuda=False) == "no"
    with pytest.raises(TrainingSetupError, match="fp16 needs a CUDA GPU"):
        precision.resolve_mixed_precision("fp16", use_cuda=False)


def test_cpu_flags_reads_this_machine():
    flags = precision.cpu_flags()
    if Path("/proc/cpuinfo").is_file():
        assert "fpu" in flags or "sse2" in flags or "fp" in flags or "asimd" in flags


def test_latest_ignores_partial_and_unmarked_checkpoints(tmp_path):
    ckpt = tmp_path / "checkpoints"
    for step, marked in ((2, True), (4, True), (6, False)):
        d = ckpt / f"step_{step:08d}"
        d.mkdir(parents=True)
        if marked:
            (d / MARKER).write_text("{}")
    (ckpt / ".tmp-step_00000008").mkdir()
    assert [s for s, _ in list_checkpoints(ckpt)] == [2, 4]
    assert resume_candidates("latest", ckpt)[0].name == "step_00000004"
    with pytest.raises(TrainingSetupError, match="not a complete checkpoint"):
        resume_candidates(str(ckpt / "step_00000006"), ckpt)


def test_sampler_order_is_a_function_of_seed_and_epoch():
    s1, s2 = EpochShuffleSampler(10, seed=3), EpochShuffleSampler(10, seed=3)
    s1.set_epoch(1), s2.set_epoch(1)
    assert list(s1) == list(s2) and sorted(s1) == list(range(10))
    s2.set_epoch(2)
    assert list(s1) != list(s2)
    assert list(EpochShuffleSampler(5, seed=0, shuffle=False)) == [0, 1, 2, 3, 4]


def test_trainer_state_and_pools_round_trip():
    state = TrainerState(step=7, epoch=2, batch_in_epoch=3)
    other = TrainerState()
    other.load_state_dict(state.state_dict())
    assert other == state
    pools = ProcessPools(pool_size=4, seed=0, rank=0, gather=lambda x: [x])
    for i in range(6):
        pools.fake_a.query(torch.full((1, 3, 4, 4), float(i)))
    saved = pools.state_dict()
    restored = ProcessPools(pool_size=4, seed=0, rank=0, gather=lambda x: [x])
    restored.load_state_dict(saved)
    probe = torch.full((1, 3, 4, 4), 9.0)
    torch.testing.assert_close(pools.fake_a.query(probe.clone()), restored.fake_a.query(probe.clone()))
    with pytest.raises(ValueError, match="same number of processes"):
        ProcessPools(4, 0, rank=1, gather=lambda x: [x]).load_state_dict(saved)


def test_ema_update_is_the_exponential_average():
    net = torch.nn.Linear(2, 2)
    ema = Ema(net, decay=0.9)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    torch.testing.assert_close(ema.module.weight, start + 0.1)
    assert not ema.module.weight.requires_grad


def test_cyclegan_group_exposes_train():
    from cyclegan.cli import main

    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0 and "--resume" in result.output and "OVERRIDES" in result.output


def test_style_options_train_and_resume_exactly(dataset, tmp_path):
    """model.d_a_input=luminance (D_A sees one channel), model.skip_change=luminance and loss.lambda_change_tv
    together: a run interrupted at step 2 and resumed ends with the same weights as one that was not."""
    from cyclegan.config import load_config
    from cyclegan.training import train

    def config(out: Path, steps: int):
        options = [
            "model.d_a_input=luminance",
            "model.global_skip=true",
            "model.skip_change=luminance",
            "loss.lambda_change_tv=2",
        ]
        overrides = [f"data.root={dataset}", f"train.output_dir={out}", *TINY, *options, "train.mixed_precision=no"]
        return load_config(
            REPO / "configs/tiny_cpu.yaml", [*overrides, f"train.max_steps={steps}", "train.save_every=2"]
        )

    straight = train(config(tmp_path / "straight", 4), progress=False)
    train(config(tmp_path / "resumed", 2), progress=False)
    resumed = train(config(tmp_path / "resumed", 4), resume="latest", progress=False)
    d_a = straight.discriminators.d_a
    assert d_a.discriminator.model[0].in_channels == 1  # the judge of the style sees luminance only
    assert straight.discriminators.d_b.model[0].in_channels == 3
    assert {"loss/D_A", "loss/G_A"} <= set(straight.last_losses) and all(
        torch.isfinite(torch.tensor(v)) for v in straight.last_losses.values()
    )
    # The plain skip starts at the identity (last convolution zero): no change, no price at step 1; then the
    # network edits the photo and the total variation of its change is priced and logged.
    change_tv = [json.loads(line)["loss/change_tv_A"] for line in (tmp_path / "straight/metrics.jsonl").open()]
    assert change_tv[0] == 0 and all(value > 0 for value in change_tv[1:]) and len(change_tv) == 4
    for mine, theirs in ((straight.generators, resumed.generators), (straight.discriminators, resumed.discriminators)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "resume is not exact"
