"""The torch twins of :mod:`cyclegan.contract.pixels`: images <-> the generators' [-1, 1] space, same constants."""

from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from cyclegan.contract.pixels import MEAN, STD

_MEAN = torch.tensor(MEAN).view(3, 1, 1)
_STD = torch.tensor(STD).view(3, 1, 1)


def image_to_model(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 ``[3, H, W]`` in the model's space."""
    return F.pil_to_tensor(image).to(torch.float32).div_(255.0 * _STD).sub_(_MEAN / _STD)


def model_to_unit(x: torch.Tensor) -> torch.Tensor:
    """Model-space tensor ``[..., 3, H, W]`` -> [0, 1] (for image grids), clamped."""
    return (x.float().clamp(-1, 1) * _STD.to(x.device) + _MEAN.to(x.device)).clamp(0, 1)
