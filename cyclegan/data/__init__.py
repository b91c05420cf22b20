"""Unpaired image data for training (torch): the dataset, its transforms and loader helpers.

The folder layout is the public CycleGAN one (``trainA/trainB/testA/testB``, see :mod:`cyclegan.contract.layout`),
written by ``cyclegan frames`` and ``cyclegan images``.
"""

from cyclegan.data.dataset import UnpairedImageDataset, item_seed, load_image
from cyclegan.data.loading import default_num_workers, load_fixed_images
from cyclegan.data.transforms import ImageTransform

__all__ = [
    "ImageTransform",
    "UnpairedImageDataset",
    "default_num_workers",
    "item_seed",
    "load_fixed_images",
    "load_image",
]
