"""Everything a run reports while it trains: metrics.jsonl, Accelerate's trackers, sample grids, the progress bar."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from cyclegan.contract.files import append_lines
from cyclegan.training.outputs import write_sample


class RunLogger:
    """Owns ``RUN/metrics.jsonl`` (appended across resumes), the trackers and ``RUN/samples/``.

    Rates (``it_per_s``) count training time only: time spent writing samples and checkpoints inside
    :meth:`pause` is left out.
    """

    def __init__(self, run_dir: Path, accelerator: Accelerator, *, total: int, initial: int, progress: bool) -> None:
        self.run_dir = run_dir
        self.accelerator = accelerator
        self.main = accelerator.is_main_process
        self.bar = tqdm(
            total=total, initial=initial, disable=not (self.main and progress), unit="it", dynamic_ncols=True
        )
        self._window_start, self._window_steps, self._paused = time.perf_counter(), 0, 0.0

    def step(self) -> None:
        self.bar.update(1)
        self._window_steps += 1

    def log(self, step: int, epoch: int, lr: float, losses: dict[str, float]) -> None:
        """One line of metrics.jsonl, the same values to the trackers, a summary on the progress bar."""
        elapsed = time.perf_counter() - self._window_start - self._paused
        record: dict[str, Any] = {**losses, "step": step, "epoch": epoch, "lr": lr}
        record["it_per_s"] = self._window_steps / elapsed if elapsed > 0 else 0.0
        self.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
        if self.main:  # whole lines only: a full disk never leaves half a record
            append_lines(self.run_dir / "metrics.jsonl", [json.dumps(record, sort_keys=True)])
        self.bar.set_postfix(
            G=f"{losses['loss/G_A'] + losses['loss/G_B']:.3f}",
            D=f"{losses['loss/D_A'] + losses['loss/D_B']:.3f}",
            cyc=f"{losses['loss/cycle_A'] + losses['loss/cycle_B']:.3f}",
            refresh=False,
        )
        self._window_start, self._window_steps, self._paused = time.perf_counter(), 0, 0.0

    def log_scores(self, step: int, epoch: int, scores: dict[str, float]) -> None:
        """Evaluation scores (``eval/*`` keys): one metrics.jsonl line and the trackers (main process only)."""
        if not self.main:
            return
        self.accelerator.log(scores, step=step)
        append_lines(
            self.run_dir / "metrics.jsonl", [json.dumps({**scores, "step": step, "epoch": epoch}, sort_keys=True)]
        )

    def samples(self, step: int, grid: torch.Tensor) -> None:
        """``RUN/samples/step_N.png`` and the image trackers (main process only)."""
        if not self.main:
            return
        write_sample(grid, self.run_dir / "samples" / f"step_{step:08d}.png")
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.log_images({"samples": grid.unsqueeze(0).numpy()}, step=step)

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """``with logger.pause(): ...`` around I/O that must not count as training time."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - start

    def close(self) -> None:
        self.bar.close()
