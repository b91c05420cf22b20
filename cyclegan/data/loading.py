"""Helpers around the dataset: worker count and the fixed images used for sample grids."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from cyclegan.contract.images import list_images
from cyclegan.contract.layout import DatasetError, domain_dir
from cyclegan.contract.runtime import available_cpus
from cyclegan.data.dataset import load_image
from cyclegan.models.pixels import image_to_model


def default_num_workers(cpus: int | None = None) -> int:
    """DataLoader workers that keep the CPUs busy without over-subscribing them.

    One core stays with the training process, at most 4 workers (decoding a 286 px JPEG is cheap),
    and 0 (load in the main process) on a single core. PyTorch already limits each worker to one
    intra-op thread; give the training process the rest:
    ``torch.set_num_threads(max(1, available_cpus() - num_workers))``.
    """
    cpus = available_cpus() if cpus is None else cpus
    return max(0, min(cpus - 1, 4))


def load_fixed_images(root: str | Path, domain: str, n: int, size: int) -> torch.Tensor:
    """The first ``n`` images (sorted by name) of ``test<domain>`` as a [k, 3, size, size] tensor in [-1, 1].

    Falls back to ``train<domain>`` when the test folder is missing or empty. Each image is resized
    (shorter side to ``size``) and centre-cropped. ``k = min(n, images available)``.
    """
    if n < 0 or size <= 0:
        raise ValueError(f"n must be >= 0 and size > 0, got n={n}, size={size}")
    paths: list[Path] = []
    for phase in ("test", "train"):
        folder = domain_dir(root, phase, domain)
        if folder.is_dir():
            paths = list_images(folder)
            if paths:
                break
    if not paths:
        raise DatasetError(
            f"no images in {domain_dir(root, 'test', domain)} or {domain_dir(root, 'train', domain)}: "
            f"create them with `cyclegan frames` or `cyclegan images --domain {domain}`"
        )
    tensors = [image_to_model(_square(load_image(path), size)) for path in paths[:n]]
    return torch.stack(tensors) if tensors else torch.empty(0, 3, size, size)


def _square(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size``, then the centre ``size`` x ``size`` square."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))), Image.Resampling.BICUBIC
    )
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))
