"""What a run writes besides checkpoints: sample grids and the generators with their cards."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.utils import make_grid, save_image

from cyclegan.config import Config
from cyclegan.contract import files
from cyclegan.generator_io import card_from_config, save_generator
from cyclegan.models.pixels import model_to_unit


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
    return make_grid(model_to_unit(torch.cat(rows)).cpu(), nrow=4, padding=2)


def write_sample(grid: torch.Tensor, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise files.output_error(path.parent, exc) from None
    with files.atomic_path(path) as tmp:
        save_image(grid, tmp, format="png")


def export_generators(
    generators: nn.Module,
    cfg: Config,
    out_dir: Path,
    step: int,
    epoch: int,
    ema: bool,
    *,
    prefix: str = "",
    extra: dict[str, object] | None = None,
) -> None:
    """``<prefix>A2B.safetensors`` (G_A) and ``<prefix>B2A.safetensors`` (G_B) with their GeneratorCards (atomic
    writes; ``extra`` goes into the cards' ``extra``, e.g. the evaluation score of ``best_*``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for direction, net in (("A2B", generators.g_a), ("B2A", generators.g_b)):
        card = card_from_config(cfg, direction, step=step, epoch=epoch, ema=ema)
        if extra:
            card.extra.update(extra)
        save_generator(out_dir / f"{prefix}{direction}.safetensors", net, card)
