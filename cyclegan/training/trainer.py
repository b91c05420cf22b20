"""The training loop. Everything before the first step is :func:`cyclegan.training.setup.setup`; one iteration
(generator step, then discriminator step) is :class:`cyclegan.training.step.CycleGANStep`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cyclegan.config import Config
from cyclegan.training.checkpoint import list_checkpoints
from cyclegan.training.errors import TrainingDivergedError
from cyclegan.training.evaluate import Evaluator
from cyclegan.training.logger import RunLogger
from cyclegan.training.nodes import reports_lost_peers
from cyclegan.training.outputs import export_generators
from cyclegan.training.setup import TrainingRun, setup


@dataclass
class RunResult:
    run_dir: Path
    step: int
    epoch: int
    mixed_precision: str
    last_losses: dict[str, float]
    generators: nn.Module  # this process's networks, unwrapped (G_A + G_B, D_A + D_B)
    discriminators: nn.Module


def train(cfg: Config, resume: str | None = None, *, progress: bool = True) -> RunResult:
    """Train (or continue, with ``resume="latest"`` or a checkpoint path) the run in ``cfg.train.output_dir``.

    Anything wrong with the config, the data or the run folder raises a ToolkitError before the first write;
    losing another process (a node that died or hangs) raises a PeerLostError.
    """
    run: TrainingRun | None = None
    with reports_lost_peers(cfg.train.ddp_timeout_s, lambda: run.state.step if run is not None else None):
        run = setup(cfg, resume)
        try:
            return _train(run, progress)
        finally:
            if run.lock is not None:
                run.lock.release()


def _train(run: TrainingRun, progress: bool) -> RunResult:
    t, state, acc = run.cfg.train, run.state, run.accelerator
    logger = RunLogger(run.dir, acc, total=run.total_steps, initial=state.step, progress=progress)
    losses: dict[str, float] = {}
    evaluator = Evaluator.for_run(run.cfg)  # None unless train.eval_every
    while state.step < run.total_steps:
        for real_a, real_b in run.batches():
            step_losses = run.step(real_a, real_b, warmup=state.step < t.identity_warmup_steps)
            if run.ema is not None:
                run.ema.update(acc.unwrap_model(run.generators))
            run.schedulers.step(epoch_done=state.advance(run.steps_per_epoch))
            logger.step()
            last = state.step == run.total_steps
            if state.step % t.log_every == 0 or state.step % t.save_every == 0 or last:
                losses = finite_losses(run, step_losses)
            if state.step % t.log_every == 0 or last:
                logger.log(state.step, state.epoch, run.schedulers.lr, losses)
            with logger.pause():  # evaluating, writing samples and checkpoints is not training time
                if evaluator is not None:
                    evaluator.maybe_run(run, logger, last)
                if state.step % t.sample_every == 0:
                    logger.samples(state.step, run.sample_grid())
                if state.step % t.save_every == 0 or last:
                    save(run)
            if last:
                break
    with logger.pause():
        if state.step % t.sample_every and (grid := run.sample_grid()) is not None:
            logger.samples(state.step, grid)
        save(run)  # a no-op for the checkpoint when the last step was already saved
    logger.close()
    acc.end_training()
    return RunResult(
        run.dir,
        state.step,
        state.epoch,
        run.precision,
        losses,
        acc.unwrap_model(run.generators),
        acc.unwrap_model(run.discriminators),
    )


def save(run: TrainingRun) -> None:
    """A checkpoint (all ranks) and the generators with their cards (main process)."""
    state = run.state
    run.checkpoints.save(run.accelerator, state.step, {"step": state.step, "epoch": state.epoch})
    if run.accelerator.is_main_process:
        export_generators(
            run.export_generators, run.cfg, run.dir / "generators", state.step, state.epoch, run.ema is not None
        )


def finite_losses(run: TrainingRun, losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """The losses as floats; every process stops together when any of them became NaN or infinite."""
    values = {k: float(v) for k, v in losses.items()}
    finite = torch.tensor([float(all(math.isfinite(v) for v in values.values()))], device=run.accelerator.device)
    if run.accelerator.gather(finite).min() < 1:
        bad = ", ".join(f"{k}={v}" for k, v in values.items() if not math.isfinite(v)) or "on another process"
        kept = [step for step, _ in list_checkpoints(run.checkpoints.dir)]
        raise TrainingDivergedError(
            f"training diverged at step {run.state.step}: non-finite losses ({bad}); nothing was saved after "
            f"{f'checkpoint step {kept[-1]}' if kept else 'the start'}. Lower optim.lr or check the data"
        )
    return values
