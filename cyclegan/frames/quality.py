"""Frame quality scores and the filter that turns them into a keep/drop reason.

Scores are computed on a gray copy whose longer side is :data:`ANALYSIS_SIDE` px, so the
sharpness threshold means the same thing for a 480p and a 4K video and costs the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

ANALYSIS_SIDE = 256


@dataclass(frozen=True)
class Scores:
    """``mean``/``std``: gray level 0..255; ``sharpness``: variance of the 4-neighbour Laplacian."""

    mean: float
    std: float
    sharpness: float

    def as_dict(self) -> dict[str, float]:
        return {"mean": round(self.mean, 2), "std": round(self.std, 2), "sharpness": round(self.sharpness, 2)}


def analysis_gray(image: Image.Image) -> np.ndarray:
    """The float32 gray copy (longer side ANALYSIS_SIDE px) every score and hash starts from."""
    gray = image.convert("L")
    scale = ANALYSIS_SIDE / max(gray.size)
    if scale < 1:
        size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
        gray = gray.resize(size, Image.Resampling.BOX)
    return np.asarray(gray, dtype=np.float32)


def score(gray: np.ndarray) -> Scores:
    """Brightness, contrast and sharpness of an :func:`analysis_gray` array."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return Scores(float(gray.mean()), float(gray.std()), 0.0)
    lap = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4.0 * gray[1:-1, 1:-1]
    return Scores(float(gray.mean()), float(gray.std()), float(lap.var()))


@dataclass(frozen=True)
class QualityFilter:
    """Thresholds; a frame is dropped for the first rule it breaks (``None`` disables a rule).

    ``max_dark``: drop if mean gray <= this (near-black); ``min_bright``: drop if mean >= this
    (near-white); ``min_std``: drop if the gray standard deviation is below (flat, fades, title
    cards); ``min_sharpness``: drop if the Laplacian variance is below (blur, motion blur).
    """

    max_dark: float | None = 16.0
    min_bright: float | None = 240.0
    min_std: float | None = 8.0
    min_sharpness: float | None = 25.0

    def reason(self, scores: Scores) -> str | None:
        """``"dark"``, ``"bright"``, ``"flat"``, ``"blurry"`` or None (keep)."""
        if self.max_dark is not None and scores.mean <= self.max_dark:
            return "dark"
        if self.min_bright is not None and scores.mean >= self.min_bright:
            return "bright"
        if self.min_std is not None and scores.std < self.min_std:
            return "flat"
        if self.min_sharpness is not None and scores.sharpness < self.min_sharpness:
            return "blurry"
        return None
