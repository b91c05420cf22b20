"""cyclegan.training in real processes: exact resume after SIGKILL, a kill during a checkpoint write,
two-process DDP on CPU (gloo) with bit-identical weights on every rank, and bf16 on CPU."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from synthetic import make_permuted_dataset

from cyclegan.config import load_config
from cyclegan.generator_io import read_card
from cyclegan.training.checkpoint import list_checkpoints
from cyclegan.training.nets import GeneratorPair

REPO = Path(__file__).resolve().parents[1]
HOOKED = REPO / "tests" / "hooked_train.py"  # train_accel.py plus --fault / --dump-weights
TIMEOUT = 240


def _args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--config",
        str(REPO / "configs/tiny_cpu.yaml"),
        "--no-progress",
        f"data.root={root}",
        f"train.output_dir={out}",
        "model.generator=resnet_6blocks",
        "model.ngf=8",
        "model.ndf=8",
        "data.load_size=36",
        "data.crop_size=32",
        "data.num_workers=0",
        "data.test_images=2",
        # 'no' quoted: YAML reads a bare no as false
        "train.deterministic=true",
        "train.mixed_precision='no'",
        "train.log_with=none",
        "train.log_every=1",
        *extra,
    ]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def _train(args: list[str], **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(REPO / "train_accel.py"), *args],
        cwd=REPO,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _run_until_fault_then_kill(args: list[str], fault: str) -> None:
    """Start training with a fault hook that stalls at ``fault``, wait for it, then SIGKILL the process."""
    proc = subprocess.Popen(
        [sys.executable, str(HOOKED), "--fault", fault, *args],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        for line in proc.stdout:
            if line.startswith(f"FAULT {fault}"):
                break
            assert time.monotonic() < deadline, "fault point not reached in time"
        else:
            pytest.fail(f"process exited ({proc.wait()}) without reaching {fault}")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    """All four networks of a checkpoint: model.safetensors = G pair, model_1.safetensors = D pair."""
    tensors = {f"G.{k}": v for k, v in load_file(ckpt / "model.safetensors").items()}
    tensors.update({f"D.{k}": v for k, v in load_file(ckpt / "model_1.safetensors").items()})
    return tensors


def _last_metrics(run: Path) -> dict:
    """The last line of losses (evaluation lines, train.eval_every, hold eval/* scores only)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "lr" in r][-1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_permuted_dataset(tmp_path_factory.mktemp("train") / "ds", n_train=4, n_test=2, size=40)


def test_resume_after_sigkill_gives_identical_weights(dataset, tmp_path):
    """6 steps straight vs. 3 steps, SIGKILL after the step-3 checkpoint, --resume latest to 6.

    4 images per epoch, so the checkpoint is mid-epoch (skip_first_batches) and the resumed part
    crosses an epoch boundary; the LR decays per step from step 4 on, so the scheduler is checked too.
    """
    common = [
        "train.max_steps=6",
        "train.save_every=3",
        "optim.interval=step",
        "optim.n_epochs=1",
        "optim.n_epochs_decay=2",
        "train.eval_every=2",  # evaluation (and its best generators) must not disturb the exact resume
    ]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _train(_args(dataset, straight, *common))
    _run_until_fault_then_kill(_args(dataset, resumed, *common), "after_checkpoint@3")
    assert [s for s, _ in list_checkpoints(resumed / "checkpoints")] == [3]
    _train(_args(dataset, resumed, *common, "--resume", "latest"))

    a = _weights(straight / "checkpoints/step_00000006")
    b = _weights(resumed / "checkpoints/step_00000006")
    assert a.keys() == b.keys() and len(a) > 40
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, f"{len(mismatched)} tensors differ, e.g. {mismatched[:3]}"
    mid = _weights(straight / "checkpoints/step_00000003")
    assert any(not torch.equal(a[k], mid[k]) for k in a)  # steps 4-6 changed the weights
    last_a, last_b = _last_metrics(straight), _last_metrics(resumed)
    assert last_a["step"] == last_b["step"] == 6 and last_a["epoch"] == last_b["epoch"] == 1
    assert last_a["lr"] == last_b["lr"] < 2e-4  # the schedule continued, not restarted
    assert {k: v for k, v in last_a.items() if k.startswith("loss/")} == {
        k: v for k, v in last_b.items() if k.startswith("loss/")
    }
    for name in ("A2B", "B2A"):
        assert (resumed / "generators" / f"{name}.safetensors").is_file()
        # the best evaluation survived the kill: the same best generator, from the same step, with the same score
        best_a, best_b = (read_card(run / "generators" / f"best_{name}.safetensors") for run in (straight, resumed))
        assert (best_a.step, best_a.extra) == (best_b.step, best_b.extra)
    evals = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if "eval/cycle_mae" in r] == [2, 4, 6]


@pytest.mark.slow  # two launches, ~40 s on an idle 2-core machine
def test_kill_during_checkpoint_write_keeps_previous_checkpoint(dataset, tmp_path):
    run = tmp_path / "run"
    common = ["train.max_steps=4", "train.save_every=2"]
    _run_until_fault_then_kill(_args(dataset, run, *common), "in_checkpoint@4")
    ckpts = run / "checkpoints"
    partial = ckpts / ".tmp-step_00000004"
    assert (partial / "model.safetensors").is_file()  # the write really was in progress
    assert not (ckpts / "step_00000004").exists()
    assert [s for s, _ in list_checkpoints(ckpts)] == [2]
    proc = _train(_args(dataset, run, *common, "--resume", "latest"))
    assert "done: step 4" in proc.stderr
    assert [s for s, _ in list_checkpoints(ckpts)] == [2, 4] and not partial.exists()
    # The resumed run logged only steps 3-4 after the killed run's 1-3 (no restart from 0).
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-2:] == [3, 4] and steps.count(1) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_ddp_gloo_identical_weights(dataset, tmp_path):
    """torchrun with 2 CPU processes (gloo): no reducer errors, all four nets bit-identical on both ranks."""
    run, dump = tmp_path / "run", tmp_path / "dump"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(HOOKED),
        "--dump-weights",
        str(dump),
        *_args(
            dataset, run, "train.max_steps=3", "train.save_every=2", "train.deterministic=false", "train.eval_every=2"
        ),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "reduction" not in proc.stderr
    rank0, rank1 = load_file(dump / "rank0.safetensors"), load_file(dump / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    assert {k.split(".")[1] for k in rank0} == {"g_a", "g_b", "d_a", "d_b"}
    differ = [k for k in rank0 if not torch.equal(rank0[k], rank1[k])]
    assert not differ, f"ranks disagree on {differ[:5]}"
    # Both ranks trained (2 steps per epoch of 4 images on 2 ranks), and the weights moved from init.
    assert _last_metrics(run)["epoch"] == 1
    cfg = load_config(REPO / "configs/tiny_cpu.yaml", ["model.ngf=8", "model.ndf=8"])
    torch.manual_seed(0)
    init = GeneratorPair.from_config(cfg.model).state_dict()
    assert any(not torch.equal(init[k], rank0[f"G.{k}"]) for k in init)
    # Per-rank image pools and RNG states were saved for both processes.
    last = run / "checkpoints/step_00000003"
    assert (last / "random_states_1.pkl").is_file()
    # rank 0 evaluated (steps 2 and 3) while rank 1 waited, and kept the best generators
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if "eval/cycle_mae" in r] == [2, 3]
    assert (run / "generators" / "best_A2B.safetensors").is_file()


def test_bf16_on_cpu_runs_with_finite_losses(dataset, tmp_path):
    run = tmp_path / "run"
    proc = _train(_args(dataset, run, "train.max_steps=3", "train.mixed_precision=bf16", "train.log_with=tensorboard"))
    assert "done: step 3" in proc.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        for key in (
            "loss/G_A",
            "loss/G_B",
            "loss/D_A",
            "loss/D_B",
            "loss/cycle_A",
            "loss/cycle_B",
            "loss/idt_A",
            "loss/idt_B",
            "lr",
            "it_per_s",
        ):
            assert math.isfinite(record[key]), (key, record)
    assert list((run / "logs").rglob("events.out.tfevents.*"))
    assert (run / "samples/step_00000003.png").is_file()
    assert (run / "config.yaml").is_file()
