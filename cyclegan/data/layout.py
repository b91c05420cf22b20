"""The dataset folder layout (trainA/trainB/testA/testB + dataset.json), shared with cyclegan.frames."""

from __future__ import annotations

import json
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
DOMAINS = ("A", "B")


class DatasetError(ValueError):
    """The dataset cannot be used as it is; the message names the folder or file and what to fix."""


def domain_dir(root: str | Path, phase: str, domain: str) -> Path:
    """``root/<phase><domain>``, e.g. ``datasets/monet2photo/trainA``."""
    return Path(root) / f"{phase}{domain}"


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, extension case-insensitive, hidden files skipped), sorted."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def domain_images(root: str | Path, phase: str, domain: str, max_size: int | None = None) -> list[Path]:
    """The sorted images of one domain folder; DatasetError if it is missing or holds none."""
    folder = domain_dir(root, phase, domain)
    how = (
        f"create it with `cyclegan frames VIDEO --out {root} --domain {domain}` (frames from a video) "
        f"or `cyclegan images FOLDER --out {root} --domain {domain}` (photos)"
    )
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist: {how}")
    images = list_images(folder)
    if not images:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise DatasetError(f"dataset folder {folder} holds no images ({extensions}): {how}")
    return images[:max_size] if max_size is not None else images


def read_domain_names(root: str | Path) -> dict[str, str]:
    """Human names of the domains from ``root/dataset.json`` (``"A"``/``"B"`` where not set)."""
    names = {domain: domain for domain in DOMAINS}
    path = Path(root) / "dataset.json"
    if not path.is_file():
        return names
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not readable JSON ({exc}): fix or delete it") from None
    domains = info.get("domains", {}) if isinstance(info, dict) else None
    if not isinstance(domains, dict):
        raise DatasetError(f'{path}: \'domains\' must be a mapping like {{"A": "photo", "B": "cartoon"}}')
    for domain in DOMAINS:
        value = domains.get(domain)
        if isinstance(value, str) and value.strip():
            names[domain] = value.strip()
    return names
