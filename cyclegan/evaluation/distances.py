"""KID and FID between two sets of images: torchmetrics' implementations (features of torch-fidelity's Inception-v3).

The Inception weights (~92 MB) are downloaded by torch-fidelity on first use into torch's hub cache
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``). :func:`inception_weights_present`
says whether they are there without touching the network (training evaluates KID only then); :func:`inception`
fetches them, or raises :class:`InceptionWeightsMissing` (one line: where they go and how to get them).

Features are computed once per image and handed to both metrics (a pass-through feature module), so KID and FID
cost one Inception forward per image; any feature network (``uint8 [N, 3, H, W] -> [N, F]``) can stand in for
Inception (the tests use a small one of their own).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cyclegan.contract.errors import ToolkitError

INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
KID_MAX_SUBSET = 100  # default subset size: min(this, images in either set); torchmetrics draws 100 subsets


class InceptionWeightsMissing(ToolkitError):
    """The Inception-v3 weights for KID/FID are not on disk and cannot be downloaded."""


class TooFewImages(ToolkitError):
    """Not enough images for KID/FID (or for the KID subset size asked for)."""


def inception_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]


def inception_weights_present() -> bool:
    return inception_weights_path().is_file()


def kid_available() -> bool:
    """KID can run without the network: torchmetrics and torch-fidelity installed (`eval` extra), weights on disk."""
    import importlib.util

    installed = all(importlib.util.find_spec(name) is not None for name in ("torchmetrics", "torch_fidelity"))
    return installed and inception_weights_present()


def inception(*, download: bool = True) -> nn.Module:
    """torch-fidelity's Inception-v3 (2048-d pool features, via torchmetrics), fetching its weights if allowed."""
    path = inception_weights_path()
    if not path.is_file() and not download:
        raise InceptionWeightsMissing(_missing(path, "not downloaded during training"))
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as exc:
        raise InceptionWeightsMissing(
            f"KID/FID need torchmetrics and torch-fidelity ({exc}); install the `eval` extra: "
            "pip install -c constraints.txt '.[eval]'"
        ) from None
    try:
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"])
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a truncated download a RuntimeError
        reason = getattr(exc, "reason", None) or exc
        raise InceptionWeightsMissing(_missing(path, f"download failed: {reason}")) from None


def _missing(path: Path, why: str) -> str:
    return (
        f"the Inception weights for KID/FID are missing ({path}; {why}); run `cyclegan eval` once with network "
        f"access, or download {INCEPTION_URL} to that path (set TORCH_HOME to keep it elsewhere)"
    )


class _Precomputed(nn.Module):
    """Hands features computed beforehand to torchmetrics' KID/FID (their ``feature`` module)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@torch.inference_mode()
def features(images: Iterable[np.ndarray], network: nn.Module) -> torch.Tensor:
    """``[N, F]`` float64 features of uint8 HxWx3 images (one at a time: the sizes may differ)."""
    rows = []
    for image in images:
        x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None]
        rows.append(network(x).reshape(1, -1).double())
    if not rows:
        return torch.zeros(0, 0, dtype=torch.float64)
    return torch.cat(rows)


def kid_subset_size(n_fake: int, n_real: int, asked: int | None) -> int:
    """The KID subset size: ``asked``, or min(KID_MAX_SUBSET, n_fake, n_real); refuses what cannot work."""
    n = min(n_fake, n_real)
    if n < 2:
        raise TooFewImages(
            f"KID and FID need at least 2 images in each set; found {n_fake} stylized and {n_real} reference"
        )
    if asked is None:
        return min(KID_MAX_SUBSET, n)
    if asked < 2 or asked > n:
        raise TooFewImages(
            f"KID with subsets of {asked} images needs at least {asked} images in each set; found {n_fake} stylized "
            f"and {n_real} reference: pass --kid-subset-size between 2 and {n}"
        )
    return asked


def kid_fid(fake: torch.Tensor, real: torch.Tensor, subset_size: int, *, seed: int = 0) -> dict[str, float]:
    """KID (mean and std over 100 subsets, polynomial kernel) and FID of two feature sets, by torchmetrics."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    num = real.shape[1]
    fid = FrechetInceptionDistance(feature=_Precomputed(num))
    with warnings.catch_warnings():  # "will save all extracted features in buffer": that is what we want
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=_Precomputed(num), subset_size=subset_size)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # KID's subsets are drawn with torch's global RNG: same sets, same figure
        kid_mean, kid_std = kid.compute()
    values = {"kid": float(kid_mean), "kid_std": float(kid_std), "fid": float(fid.compute())}
    if not all(math.isfinite(v) for v in values.values()):
        raise ToolkitError(f"KID/FID came out non-finite ({values}); the features hold NaN or infinite values")
    return values
