"""The unpaired two-domain dataset the trainer iterates over."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from cyclegan.config import DataConfig
from cyclegan.contract.images import ImageInputError, open_image
from cyclegan.contract.layout import DatasetError, domain_images
from cyclegan.data.transforms import ImageTransform

SQUEEZE_TOLERANCE = 1.1  # aspect ratios within 10% of square pass without a warning


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 64-bit seed that depends only on (seed, epoch, index), with no correlation between neighbours."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class UnpairedImageDataset(Dataset):
    """Images of domain A and domain B from ``root/<phase>A`` and ``root/<phase>B``.

    Item ``i`` is A image ``i mod len(A)`` with a B partner that, for ``phase="train"``, is drawn at
    random (unaligned pairs); ``serial_batches`` or any other phase uses ``i mod len(B)``. The
    partner and the augmentation are a pure function of (seed, epoch, i): call ``set_epoch`` before
    each epoch and create the DataLoader iterator afterwards (so keep ``persistent_workers=False``,
    or workers keep the epoch they were started with).
    """

    def __init__(
        self,
        root: str | Path,
        phase: str = "train",
        data_cfg: DataConfig | None = None,
        seed: int = 0,
        size_multiple: int = 4,
    ) -> None:
        self.root = Path(root)
        self.phase = phase
        self.cfg = data_cfg if data_cfg is not None else DataConfig(root=str(root))
        self.seed = seed
        self.epoch = 0
        self.paths_a = domain_images(self.root, phase, "A", self.cfg.max_dataset_size)
        self.paths_b = domain_images(self.root, phase, "B", self.cfg.max_dataset_size)
        self.random_pairs = phase == "train" and not self.cfg.serial_batches
        self.transform = ImageTransform.from_config(self.cfg, random=phase == "train", size_multiple=size_multiple)
        self.source_sizes: dict[str, list[tuple[int, int]]] = {"A": [], "B": []}  # on disk; filled by validate()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(len(self.paths_a), len(self.paths_b))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        generator = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, index))
        path_a = self.paths_a[index % len(self.paths_a)]
        if self.random_pairs:
            path_b = self.paths_b[int(torch.randint(0, len(self.paths_b), (), generator=generator))]
        else:
            path_b = self.paths_b[index % len(self.paths_b)]
        return {
            "A": self.transform(load_image(path_a), generator),
            "B": self.transform(load_image(path_b), generator),
            "A_path": str(path_a),
            "B_path": str(path_b),
        }

    def validate(self, batch_size: int = 1) -> UnpairedImageDataset:
        """Decode every image once (a truncated file passes a header check but stops training mid-epoch);
        :class:`DatasetError` lists the unusable files (up to 10). With ``batch_size`` > 1 the images of a
        domain must also come out of the transform at one size (``data.preprocess=none`` keeps each size)."""
        bad = []
        sizes: dict[str, dict[tuple[int, int], list[Path]]] = {"A": {}, "B": {}}
        self.source_sizes = {"A": [], "B": []}
        for domain, paths in (("A", self.paths_a), ("B", self.paths_b)):
            for path in paths:
                try:
                    with open_image(path) as image:
                        size = self.transform.output_size(*image.size)
                        self.source_sizes[domain].append(image.size)
                except ImageInputError as exc:
                    bad.append(f"{path} ({exc})")
                    continue
                sizes[domain].setdefault(size, []).append(path)
        if bad:
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise DatasetError(
                f"{len(bad)} unreadable image(s) in {self.root}: "
                + "; ".join(bad[:10])
                + more
                + ": delete or replace them (re-import with `cyclegan images` to convert)"
            )
        for domain, found in sizes.items():
            if batch_size > 1 and len(found) > 1:
                common, *others = sorted(found, key=lambda size: -len(found[size]))
                example = found[others[0]][0]
                raise DatasetError(
                    f"data.preprocess={self.cfg.preprocess} gives the {domain} images {len(found)} different sizes "
                    f"(e.g. {common[0]}x{common[1]} for {len(found[common])} images, {others[0][0]}x{others[0][1]} "
                    f"for {example}), but train.batch_size={batch_size} stacks images of one size: use "
                    "train.batch_size=1, a cropping data.preprocess (resize_and_crop, crop), or images of one size"
                )
        return self

    def squeeze_warnings(self) -> list[str]:
        """One line per domain whose typical image (the median aspect, after :meth:`validate`) ``resize_and_crop``
        squeezes by more than 10% into its square: the judge then learns shapes narrower (or flatter) than the
        same shapes in use (16:9 video frames 1.78 times narrower)."""
        if self.cfg.preprocess != "resize_and_crop":
            return []
        warnings = []
        for domain, found in self.source_sizes.items():
            if not found:
                continue
            width, height = sorted(found, key=lambda size: size[0] / size[1])[len(found) // 2]
            aspect = width / height
            if max(aspect, 1 / aspect) > SQUEEZE_TOLERANCE:
                axis = "narrower" if aspect > 1 else "flatter"
                warnings.append(
                    f"warning: data.preprocess=resize_and_crop squeezes the {self.phase}{domain} images (typically "
                    f"{width}x{height}) into {self.cfg.load_size}x{self.cfg.load_size} squares, so shapes are "
                    f"{max(aspect, 1 / aspect):.2f} times {axis} in training than in use: "
                    "data.preprocess=scale_shorter_side_and_crop keeps their proportions"
                )
        return warnings


def load_image(path: Path) -> Image.Image:
    try:
        return open_image(path)
    except ImageInputError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}: delete or replace the file") from None
