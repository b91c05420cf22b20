"""DiffAugment (cyclegan.augment) and the identity warm-up: what they do to images, gradients and a short run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import make_permuted_dataset

from cyclegan.augment import POLICIES, cutout, diff_augment, translation
from cyclegan.config import DIFFAUGMENT_POLICIES, load_config
from cyclegan.contract.images import open_image
from cyclegan.contract.pixels import to_model
from cyclegan.training import train
from cyclegan.training.setup import setup

REPO = Path(__file__).resolve().parents[1]


def test_every_policy_keeps_shape_and_passes_gradients() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 24, 32, requires_grad=True)
    y = diff_augment(x * 2 - 1, DIFFAUGMENT_POLICIES)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the generator learns through the augmentation


def test_empty_policy_is_the_identity_and_random_draws_follow_the_seed() -> None:
    x = torch.rand(1, 3, 16, 16)
    assert diff_augment(x, ()) is x
    torch.manual_seed(3)
    first = diff_augment(x, tuple(POLICIES))
    torch.manual_seed(3)
    assert torch.equal(first, diff_augment(x, tuple(POLICIES)))  # reproducible, so resume stays exact


def test_translation_shifts_content_and_cutout_blanks_a_quarter() -> None:
    torch.manual_seed(1)
    x = torch.arange(64.0).reshape(1, 1, 8, 8).repeat(16, 3, 1, 1) + 1  # no zeros in the input
    shifted = translation(x, ratio=0.25)
    assert not torch.equal(shifted, x)
    for image in shifted:  # a shift: every non-padded value keeps its row-major neighbour one column on
        rows = [r for r in image[0] if (r != 0).all()]
        assert all(torch.equal(r[1:] - r[:-1], torch.ones(7)) for r in rows)
    blanked = (cutout(x, ratio=0.5) == 0).float().mean(dim=(1, 2, 3))
    assert float(blanked.max()) <= 0.25 + 1e-6 and float(blanked.mean()) > 0.1  # clipped at the borders


def _short_run(data: Path, out: Path, warmup: int):
    cfg = load_config(
        REPO / "configs/tiny_cpu.yaml",
        [
            f"data.root={data}",
            f"train.output_dir={out}",
            "model.ngf=8",
            "model.ndf=8",
            "model.upsample=resize",
            "data.load_size=32",
            "data.crop_size=32",
            "data.num_workers=0",
            "train.log_with=none",
            "train.mixed_precision=no",  # Accelerate's state is per process: in-process runs in one pytest must agree
            "train.max_steps=8",
            f"train.identity_warmup_steps={warmup}",
            "train.diffaugment=color,translation,cutout",
            "optim.lr=0.002",
        ],
    )
    return cfg, train(cfg, progress=False)


@pytest.mark.slow
def test_identity_warmup_trains_only_the_generators_towards_the_input(tmp_path: Path) -> None:
    data = make_permuted_dataset(tmp_path / "ds", n_train=4, n_test=2, size=32)
    photo = torch.from_numpy(to_model(np.asarray(open_image(next((data / "testA").iterdir())))[None]))
    errors, d_moved = {}, {}
    for warmup in (0, 8):
        cfg, result = _short_run(data, tmp_path / f"run{warmup}", warmup)
        fresh = setup(replace(cfg, train=replace(cfg.train, output_dir=str(tmp_path / f"fresh{warmup}"))), None)
        initial = fresh.accelerator.unwrap_model(fresh.discriminators).state_dict()
        d_moved[warmup] = any(not torch.equal(v, initial[k]) for k, v in result.discriminators.state_dict().items())
        fresh.lock.release()
        with torch.no_grad():
            errors[warmup] = float((result.generators.g_a(photo) - photo).abs().mean())
        assert set(result.last_losses) >= {"loss/idt_A", "loss/D_A"}
    assert d_moved == {0: True, 8: False}  # the warm-up never steps the discriminators
    assert errors[8] < 0.5 * errors[0], errors  # and pulls the generators' output towards their input
