"""Near-duplicate detection with a 64-bit difference hash (dHash) and a Hamming threshold."""

from __future__ import annotations

import numpy as np
from PIL import Image


def dhash(gray: np.ndarray) -> int:
    """64-bit dHash: gray resized to 9x8, one bit per horizontal neighbour comparison.

    Robust to re-encoding, small brightness changes and resizing; distinct scenes differ in ~half
    of the bits, re-encoded copies of one frame in 0-3.
    """
    small = np.asarray(Image.fromarray(gray.astype(np.uint8)).resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class Deduper:
    """Remembers kept hashes; ``mode="consecutive"`` compares with the last kept frame only,
    ``"global"`` with every frame kept so far (and any hashes seeded from the dataset)."""

    def __init__(self, mode: str = "global", max_distance: int = 4, seed_hashes: list[int] | None = None):
        self.mode = mode
        self.max_distance = max_distance
        self._hashes = np.array(seed_hashes or [], dtype=np.uint64)
        self._pending: list[int] = []
        self._last: int | None = None

    def is_duplicate(self, value: int) -> bool:
        """True when ``value`` is within ``max_distance`` bits of a remembered hash."""
        if self.mode == "off":
            return False
        if self._last is not None and hamming(self._last, value) <= self.max_distance:
            return True
        if self.mode == "consecutive":
            return False
        if self._pending:
            self._hashes = np.concatenate([self._hashes, np.array(self._pending, dtype=np.uint64)])
            self._pending = []
        if self._hashes.size == 0:
            return False
        distances = np.bitwise_count(self._hashes ^ np.uint64(value))
        return bool((distances <= self.max_distance).any())

    def add(self, value: int) -> None:
        """Remember a kept frame's hash."""
        self._last = value
        self._pending.append(value)
