"""Checks that run before the first step, so a bad config or dataset fails in seconds with a fix."""

from __future__ import annotations

from cyclegan.config import Config
from cyclegan.data import DatasetError, UnpairedImageDataset
from cyclegan.models import check_input_size, size_multiple
from cyclegan.training.errors import TrainingSetupError


def check_sizes(cfg: Config) -> None:
    """The training crop must be a size the generator accepts (e.g. unet_256 needs multiples of 256)."""
    data = cfg.data
    if data.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop"):
        try:
            check_input_size(cfg.model.generator, data.crop_size, data.crop_size)
        except ValueError as exc:
            multiple = size_multiple(cfg.model.generator)
            raise TrainingSetupError(
                f"data.crop_size={data.crop_size} is not allowed by model.generator={cfg.model.generator}: {exc}. "
                f"Set data.crop_size to a multiple of {multiple} (and data.load_size >= it)"
            ) from None


def open_train_dataset(cfg: Config) -> UnpairedImageDataset:
    """The training dataset with every image header checked (DatasetError names the bad files)."""
    dataset = UnpairedImageDataset(cfg.data.root, "train", cfg.data, seed=cfg.train.seed)
    dataset.validate()
    if len(dataset) < cfg.train.batch_size:
        raise DatasetError(
            f"{cfg.data.root}: {len(dataset)} training image(s) but train.batch_size={cfg.train.batch_size}: "
            "add images or lower the batch size"
        )
    return dataset
