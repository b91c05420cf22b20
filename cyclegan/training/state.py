"""Objects saved with every checkpoint besides models and optimizers (via ``register_for_checkpointing``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import Sampler

from cyclegan.pool import ImagePool


@dataclass
class TrainerState:
    """Where the run is: optimizer steps done, current epoch and batches of it already consumed."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    # The best evaluation so far (train.eval_every): its metric, score and step; checkpointed so a resumed run
    # keeps comparing against it. Checkpoints older than these fields load with none.
    eval_metric: str | None = None
    eval_best: float | None = None
    eval_best_step: int | None = None

    def advance(self, steps_per_epoch: int) -> bool:
        """Count one optimizer step; True when it completed an epoch."""
        self.step += 1
        self.batch_in_epoch += 1
        if self.batch_in_epoch < steps_per_epoch:
            return False
        self.epoch += 1
        self.batch_in_epoch = 0
        return True

    def state_dict(self) -> dict[str, int | float | str | None]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, int | float | str | None]) -> None:
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.eval_metric = state.get("eval_metric")
        self.eval_best, self.eval_best_step = state.get("eval_best"), state.get("eval_best_step")


class Schedulers:
    """The generator and discriminator LR schedules, stepped per epoch or per optimizer step (``optim.interval``).

    They are stepped here, not by Accelerate's wrapper, which would step them once per process per call.
    """

    def __init__(self, generators: LRScheduler, discriminators: LRScheduler, interval: str) -> None:
        self.generators, self.discriminators, self.interval = generators, discriminators, interval

    def step(self, epoch_done: bool) -> None:
        if self.interval == "step" or epoch_done:
            self.generators.step()
            self.discriminators.step()

    @property
    def lr(self) -> float:
        return self.generators.get_last_lr()[0]


class ProcessPools:
    """The two image pools (fake A, fake B) of *this* process, checkpointed for every process.

    Accelerate writes custom objects from the main process only, but ``state_dict`` is called on
    every rank: ``gather`` collects all ranks' pools into one dict keyed by rank, and each rank
    picks its own on load. A pool per process is what the paper's DDP ports do.
    """

    def __init__(self, pool_size: int, seed: int, rank: int, gather: Callable[[Any], list[Any]]) -> None:
        self.rank = rank
        self.fake_a = ImagePool(pool_size, seed=seed * 1000 + 2 * rank)
        self.fake_b = ImagePool(pool_size, seed=seed * 1000 + 2 * rank + 1)
        self._gather = gather

    def state_dict(self) -> dict[str, Any]:
        mine = {"fake_A": self.fake_a.state_dict(), "fake_B": self.fake_b.state_dict()}
        return {"by_rank": self._gather(mine)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        by_rank = state["by_rank"]
        if self.rank >= len(by_rank):
            raise ValueError(
                f"checkpoint holds image pools for {len(by_rank)} process(es), this is rank {self.rank}: "
                "resume with the same number of processes"
            )
        self.fake_a.load_state_dict(by_rank[self.rank]["fake_A"])
        self.fake_b.load_state_dict(by_rank[self.rank]["fake_B"])


class EpochShuffleSampler(Sampler[int]):
    """A permutation that is a pure function of (seed, epoch): the same on every rank and after a resume."""

    def __init__(self, length: int, seed: int, shuffle: bool = True) -> None:
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.length))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=g).tolist())
