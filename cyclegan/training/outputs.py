"""What a run writes besides checkpoints: metrics.jsonl, sample grids and the exported generators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.utils import make_grid, save_image

from cyclegan.config import Config
from cyclegan.generator_io import card_from_config, save_generator


class MetricsLog:
    """Appends one JSON object per logged step to ``metrics.jsonl`` (kept across resumes)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")


@torch.no_grad()
def sample_grid(generators: nn.Module, fixed_a: torch.Tensor, fixed_b: torch.Tensor) -> torch.Tensor:
    """A [3, H, W] image in [0, 1]: one row per fixed image, columns real | fake | reconstruction | identity.

    Rows of A images show G_A's translation, G_B's reconstruction and G_B's identity mapping
    of the A image; rows of B images the same with the roles swapped.
    """
    g_a, g_b = generators.g_a, generators.g_b
    was_training = generators.training
    generators.eval()
    rows = []
    for real, forward, backward in ((fixed_a, g_a, g_b), (fixed_b, g_b, g_a)):
        if len(real) == 0:
            continue
        fake = forward(real)
        rows.append(torch.stack([real, fake, backward(fake), backward(real)], dim=1).flatten(0, 1))
    generators.train(was_training)
    images = torch.cat(rows).float().clamp(-1, 1) * 0.5 + 0.5
    return make_grid(images.cpu(), nrow=4, padding=2)


def write_sample(grid: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    save_image(grid, tmp)
    tmp.replace(path)


def export_generators(generators: nn.Module, cfg: Config, out_dir: Path, step: int, epoch: int, ema: bool) -> None:
    """``A2B.safetensors`` (G_A) and ``B2A.safetensors`` (G_B) with their GeneratorCards (atomic writes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for direction, net in (("A2B", generators.g_a), ("B2A", generators.g_b)):
        card = card_from_config(cfg, direction, step=step, epoch=epoch, ema=ema)
        save_generator(out_dir / f"{direction}.safetensors", net, card)
