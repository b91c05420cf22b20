"""Per-image preprocessing and augmentation, driven by an explicit ``torch.Generator``.

Random parameters (crop offset, flip) are drawn from the generator handed in, never from the
global RNG, so an item's augmentation depends only on how that generator was seeded: the dataset
seeds it from (seed, epoch, index), which makes the result identical in any worker or process.
The pixel work itself is done by torchvision's transforms v2 functional ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from cyclegan.config import CROPPING_PREPROCESS, DataConfig, Preprocess
from cyclegan.models.pixels import image_to_model


@dataclass(frozen=True)
class ImageTransform:
    """PIL image -> float tensor [3, H, W] in [-1, 1], as in the original CycleGAN ``get_transform``.

    * ``resize_and_crop``: resize to load_size x load_size, then crop crop_size.
    * ``crop``: crop crop_size (images smaller than that are first scaled up to it).
    * ``scale_width``: width to load_size, keeping the aspect (height at least crop_size).
    * ``scale_width_and_crop``: the same, then crop crop_size.
    * ``scale_shorter_side_and_crop``: the shorter side to load_size, keeping the aspect, then crop crop_size:
      video frames keep their proportions (``resize_and_crop`` squeezes a 16:9 frame into a square).
    * ``none``: the image as it is.
    Uncropped outputs are resized to the nearest multiple of ``size_multiple`` (the generator's, see
    :mod:`cyclegan.contract.sizes`); they differ in size from image to image, so batch them with batch_size 1.

    With ``random=True`` crops are random and flips happen with probability 1/2 (when ``flip``);
    otherwise crops are centred and nothing is flipped (test images, sample grids).
    """

    preprocess: Preprocess = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    random: bool = True
    size_multiple: int = 4

    @classmethod
    def from_config(cls, cfg: DataConfig, *, random: bool = True, size_multiple: int = 4) -> ImageTransform:
        return cls(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip, random, size_multiple)

    @property
    def crops(self) -> bool:
        return self.preprocess in CROPPING_PREPROCESS

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the tensor this transform makes of a ``width`` x ``height`` image."""
        if self.crops:
            return self.crop_size, self.crop_size
        if self.preprocess in ("scale_width", "scale_width_and_crop"):
            width, height = self.load_size, max(round(self.load_size * height / width), self.crop_size)
        return _multiple_size(width, height, self.size_multiple)

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.random and generator is None:
            raise ValueError("a random ImageTransform needs a torch.Generator (seed it per item)")
        image = self._resize(image)
        if self.crops:
            image = self._crop(image, generator)
        else:
            image = _resize_to_multiple(image, self.size_multiple)
        if self.random and self.flip and torch.rand((), generator=generator).item() < 0.5:
            image = F.horizontal_flip(image)
        return image_to_model(image)

    def _resize(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        if self.preprocess == "resize_and_crop":
            return F.resize(image, [self.load_size, self.load_size], InterpolationMode.BICUBIC)
        if self.preprocess in ("scale_width", "scale_width_and_crop"):
            new_height = max(round(self.load_size * height / width), self.crop_size)
            if (width, height) == (self.load_size, new_height):
                return image
            return F.resize(image, [new_height, self.load_size], InterpolationMode.BICUBIC)
        if self.preprocess == "scale_shorter_side_and_crop" and min(width, height) != self.load_size:
            return F.resize(image, [self.load_size], InterpolationMode.BICUBIC)  # shorter side -> load_size
        if self.preprocess == "crop" and min(width, height) < self.crop_size:
            return F.resize(image, [self.crop_size], InterpolationMode.BICUBIC)  # shorter side -> crop_size
        return image

    def _crop(self, image: Image.Image, generator: torch.Generator | None) -> Image.Image:
        width, height = image.size
        size = self.crop_size
        if width < size or height < size:  # scale_width_and_crop with load_size < crop_size
            image = F.resize(image, [size], InterpolationMode.BICUBIC)
            width, height = image.size
        if self.random:
            top = int(torch.randint(0, height - size + 1, (), generator=generator))
            left = int(torch.randint(0, width - size + 1, (), generator=generator))
        else:
            top, left = (height - size) // 2, (width - size) // 2
        return F.crop(image, top, left, size, size)


def _multiple_size(width: int, height: int, multiple: int) -> tuple[int, int]:
    return max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple)


def _resize_to_multiple(image: Image.Image, multiple: int) -> Image.Image:
    width, height = image.size
    target = _multiple_size(width, height, multiple)
    if target == (width, height):
        return image
    return F.resize(image, [target[1], target[0]], InterpolationMode.BICUBIC)
