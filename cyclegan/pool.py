"""Image history buffer (Shrivastava et al. 2017), as ``ImagePool`` in the original CycleGAN code.

The discriminator is updated with a mix of the newest fakes and older ones, which damps oscillation.
The pool has its own RNG, so it neither consumes nor depends on the global random state, and its
``state_dict`` (CPU tensors, RNG state included) makes a resumed run draw the same sequence.
"""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    """Holds up to ``pool_size`` past images; ``pool_size=0`` disables it (query returns its input)."""

    def __init__(self, pool_size: int = 50, seed: int = 0) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}")
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []  # each [C,H,W], detached, on the device it came from
        self._rng = torch.Generator(device="cpu")
        self._rng.manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch like ``images`` ([N,C,H,W]); each item is, independently per image:

        * while the pool fills: the input itself (and it is stored);
        * afterwards, with probability 1/2: a random stored image (replaced by the input); else the input.

        The result is detached: the discriminator step must not backpropagate into the generator.
        """
        images = images.detach()
        if self.pool_size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
                continue
            if torch.rand((), generator=self._rng).item() > 0.5:
                idx = int(torch.randint(0, self.pool_size, (), generator=self._rng).item())
                old = self.images[idx].to(device=image.device, dtype=image.dtype)
                self.images[idx] = image.clone()
                out.append(old)
            else:
                out.append(image)
        return torch.stack(out, 0)

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and ints only (loads with ``torch.load(weights_only=True)``)."""
        return {
            "pool_size": self.pool_size,
            "images": [img.detach().to("cpu", copy=True) for img in self.images],
            "rng_state": self._rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["pool_size"] != self.pool_size:
            raise ValueError(
                f"image pool checkpoint has pool_size {state['pool_size']} but this run uses {self.pool_size}; "
                "set loss.pool_size to match or start a fresh run"
            )
        self.images = [img.clone() for img in state["images"]]
        self._rng.set_state(state["rng_state"])
