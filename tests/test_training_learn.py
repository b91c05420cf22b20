"""Learnability: CycleGAN recovers a known unpaired mapping (B = A with its RGB channels permuted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import PERM, make_permuted_dataset, permute, to_unit_tensor

from cyclegan.generator_io import load_generator

REPO = Path(__file__).resolve().parents[1]
STEPS = int(os.environ.get("CYCLEGAN_LEARN_STEPS", "400"))


@pytest.mark.slow
def test_learns_channel_permutation(tmp_path):
    root = make_permuted_dataset(tmp_path / "ds", n_train=48, n_test=16, size=32, seed=1)
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        str(REPO / "train_accel.py"),
        "--config",
        str(REPO / "configs/tiny_cpu.yaml"),
        "--no-progress",
        f"data.root={root}",
        f"train.output_dir={run}",
        f"train.max_steps={STEPS}",
        # norm=none: instance norm (and batch norm at batch 1) removes each image's mean colour, which is
        # exactly what this mapping must carry through.
        "model.generator=resnet_6blocks",
        "model.ngf=16",
        "model.ndf=16",
        "model.norm=none",
        "data.load_size=32",
        "data.crop_size=32",
        "data.flip=false",
        "data.num_workers=0",
        "loss.lambda_identity=0",
        "optim.scheduler=constant",
        "optim.n_epochs=100",
        "train.mixed_precision=auto",
        "train.log_with=none",
        f"train.save_every={STEPS}",
        f"train.sample_every={STEPS}",
        "train.log_every=50",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny convs: one thread is fastest on a busy 2-core box
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    g_a, card = load_generator(run / "generators" / "A2B.safetensors")
    assert card.direction == "A2B" and card.step == STEPS
    mae_model, mae_identity = [], []
    with torch.no_grad():
        for path in sorted((root / "testA").iterdir()):  # held out: never seen in training
            a = np.asarray(Image.open(path).convert("RGB"))
            target = to_unit_tensor(permute(a, PERM))
            source = to_unit_tensor(a)
            out = g_a(source)
            mae_model.append(float((out - target).abs().mean()) / 2)  # in [0, 1] pixel units
            mae_identity.append(float((source - target).abs().mean()) / 2)
    model, identity = float(np.mean(mae_model)), float(np.mean(mae_identity))
    print(f"held-out MAE after {STEPS} steps: G_A(a) vs perm(a) = {model:.4f}; identity = {identity:.4f}")
    assert identity > 0.15  # the task is not trivial
    assert model < 0.4 * identity, (model, identity)
