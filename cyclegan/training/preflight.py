"""Checks that run before anything is written, so a bad config, dataset or run folder fails in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from cyclegan.config import CROPPING_PREPROCESS, Config
from cyclegan.contract import sizes
from cyclegan.contract.layout import DatasetError
from cyclegan.data import UnpairedImageDataset
from cyclegan.models import build_discriminator, build_generator
from cyclegan.training.checkpoint import list_checkpoints
from cyclegan.training.errors import TrainingSetupError

# Settings a checkpoint's tensors depend on: resuming with other values would fail to load or mix two runs.
_RESUME_MUST_MATCH = ("model", "loss.pool_size", "data.crop_size", "train.ema_decay")


def check_sizes(cfg: Config) -> None:
    """The training crop must be a size the generator accepts (e.g. unet_256 needs multiples of 256)."""
    data = cfg.data
    if data.preprocess in CROPPING_PREPROCESS:
        try:
            sizes.check_input_size(cfg.model.generator, data.crop_size, data.crop_size)
        except sizes.InputSizeError as exc:
            raise TrainingSetupError(
                f"data.crop_size={data.crop_size} is not allowed by model.generator={cfg.model.generator}: {exc}. "
                f"Set data.crop_size to a multiple of {sizes.size_multiple(cfg.model.generator)} "
                "(and data.load_size >= it)"
            ) from None


def check_networks_run(cfg: Config) -> None:
    """Build both networks on the meta device (no memory) and run them on one training crop, so that sizes the
    architecture cannot take (e.g. model.n_layers_d=6 on 32 px crops) stop here instead of at the first step."""
    if cfg.data.preprocess not in CROPPING_PREPROCESS:
        return  # sizes vary per image; the dataset check covers them
    side = cfg.data.crop_size
    try:
        with torch.device("meta"):
            fake = build_generator(cfg.model).train()(torch.empty(2, cfg.model.input_nc, side, side))
            build_discriminator(cfg.model).train()(fake)
    except (RuntimeError, ValueError) as exc:
        raise TrainingSetupError(
            f"the networks cannot train on {side}x{side} crops with model.discriminator={cfg.model.discriminator}, "
            f"model.n_layers_d={cfg.model.n_layers_d}, model.generator={cfg.model.generator} "
            f"({str(exc).splitlines()[0]}): raise data.crop_size or lower model.n_layers_d"
        ) from None


def open_train_dataset(cfg: Config) -> UnpairedImageDataset:
    """The training dataset with every image decoded once (DatasetError names the bad files)."""
    dataset = UnpairedImageDataset(
        cfg.data.root, "train", cfg.data, seed=cfg.train.seed, size_multiple=sizes.size_multiple(cfg.model.generator)
    )
    dataset.validate(cfg.train.batch_size)
    if len(dataset) < cfg.train.batch_size:
        raise DatasetError(
            f"{cfg.data.root}: {len(dataset)} training image(s) but train.batch_size={cfg.train.batch_size}: "
            "add images or lower the batch size"
        )
    return dataset


def check_run_folder(cfg: Config, resume: str | None) -> None:
    """A fresh run needs a folder without a run in it; a resumed one needs the settings its tensors were made with."""
    run_dir = Path(cfg.train.output_dir)
    if resume is None:
        found = [p.name for p in (run_dir / "config.yaml", run_dir / "generators") if p.exists()]
        steps = [step for step, _ in list_checkpoints(run_dir / "checkpoints")]
        if steps:
            found.append(f"checkpoints up to step {steps[-1]}")
        if found:
            raise TrainingSetupError(
                f"train.output_dir={run_dir} already holds a run ({', '.join(found)}): continue it with "
                "--resume latest, or choose another train.output_dir (nothing was changed)"
            )
        return
    saved_path = run_dir / "config.yaml" if resume == "latest" else Path(resume).parent.parent / "config.yaml"
    if not saved_path.is_file():
        return
    try:
        saved = _flatten(yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {})
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingSetupError(f"--resume: cannot read the run's config {saved_path}: {exc}") from None
    now = _flatten(cfg.to_dict())
    differ = [
        key
        for key in sorted(set(saved) | set(now))
        if key.startswith(_RESUME_MUST_MATCH)
        and saved.get(key) != now.get(key)
        and not _both_none_or_set(saved, now, key)
    ]
    if differ:
        changes = ", ".join(f"{k}={saved.get(k)!r} (now {now.get(k)!r})" for k in differ)
        raise TrainingSetupError(
            f"--resume: the run was trained with {changes} ({saved_path}); resume with the same settings "
            "or start a new run in another train.output_dir (nothing was changed)"
        )


def _both_none_or_set(saved: dict[str, Any], now: dict[str, Any], key: str) -> bool:
    """EMA: the decay may change on resume; only switching EMA on or off changes what the checkpoint holds."""
    return key == "train.ema_decay" and (saved.get(key) is None) == (now.get(key) is None)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
