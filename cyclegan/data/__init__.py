"""Unpaired image data for training (torch): the dataset, its transforms and loader helpers.

The folder layout is the public CycleGAN one (``trainA/trainB/testA/testB``), written by
``cyclegan frames`` and ``cyclegan images`` (see docs/TEAM_CONTRACTS.md).
"""

from cyclegan.data.dataset import UnpairedImageDataset, item_seed, load_image
from cyclegan.data.layout import IMAGE_EXTENSIONS, DatasetError, domain_dir, list_images, read_domain_names
from cyclegan.data.loading import available_cpus, default_num_workers, load_fixed_images
from cyclegan.data.transforms import ImageTransform, to_tensor

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "ImageTransform",
    "UnpairedImageDataset",
    "available_cpus",
    "default_num_workers",
    "domain_dir",
    "item_seed",
    "list_images",
    "load_fixed_images",
    "load_image",
    "read_domain_names",
    "to_tensor",
]
