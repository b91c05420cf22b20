"""The dataset folder: the public CycleGAN layout, written by ``cyclegan frames``/``images``, read by training.

```
DATASET/
  trainA/ trainB/ testA/ testB/   images (the layout of monet2photo and the other public datasets)
  dataset.json                    optional: {"domains": {"A": "photo", "B": "cartoon"}}
  manifest.jsonl                  what the frame extractor decided for every frame (cyclegan.frames.store)
```
"""

from __future__ import annotations

import json
from pathlib import Path

from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.images import IMAGE_EXTENSIONS, list_images

DOMAINS = ("A", "B")
SPLITS = ("train", "test")
DATASET_JSON = "dataset.json"
MANIFEST = "manifest.jsonl"


class DatasetError(ToolkitError, ValueError):
    """The dataset cannot be used as it is; the message names the folder or file and what to fix."""


def domain_dir(root: str | Path, split: str, domain: str) -> Path:
    """``root/<split><domain>``, e.g. ``datasets/monet2photo/trainA``."""
    return Path(root) / f"{split}{domain}"


def domain_images(root: str | Path, split: str, domain: str, max_size: int | None = None) -> list[Path]:
    """The sorted images of one domain folder; :class:`DatasetError` if it is missing or holds none."""
    folder = domain_dir(root, split, domain)
    how = (
        f"create it with `cyclegan frames VIDEO --out {root} --domain {domain}` (frames from a video) "
        f"or `cyclegan images FOLDER --out {root} --domain {domain}` (photos)"
    )
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist: {how}")
    images = list_images(folder)
    if not images:
        raise DatasetError(f"dataset folder {folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}): {how}")
    return images[:max_size] if max_size is not None else images


def read_dataset_json(root: str | Path) -> dict:
    """The contents of ``root/dataset.json`` ({} when there is none); :class:`DatasetError` if unreadable."""
    path = Path(root) / DATASET_JSON
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not readable JSON ({exc}): fix or delete it") from None
    if not isinstance(info, dict) or not isinstance(info.get("domains", {}), dict):
        raise DatasetError(f'{path}: expected an object like {{"domains": {{"A": "photo", "B": "cartoon"}}}}')
    return info


def read_domain_names(root: str | Path) -> dict[str, str]:
    """Human names of the domains from ``dataset.json`` (``"A"``/``"B"`` where not set)."""
    domains = read_dataset_json(root).get("domains", {})
    names = {domain: domain for domain in DOMAINS}
    for domain in DOMAINS:
        value = domains.get(domain)
        if isinstance(value, str) and value.strip():
            names[domain] = value.strip()
    return names
