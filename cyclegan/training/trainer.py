"""The training loop: Accelerate setup, epochs/steps, logging, samples, checkpoints and export."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import ProjectConfiguration, gather_object, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cyclegan.config import Config
from cyclegan.data import available_cpus, default_num_workers, load_fixed_images, read_domain_names
from cyclegan.schedulers import build_scheduler
from cyclegan.training.checkpoint import CheckpointWriter, resolve_resume
from cyclegan.training.nets import DiscriminatorPair, Ema, GeneratorPair
from cyclegan.training.outputs import MetricsLog, export_generators, sample_grid, write_sample
from cyclegan.training.precision import resolve_mixed_precision
from cyclegan.training.preflight import check_sizes, open_train_dataset
from cyclegan.training.state import EpochShuffleSampler, ProcessPools, TrainerState
from cyclegan.training.step import CycleGANStep, StepModules


@dataclass
class RunResult:
    run_dir: Path
    step: int
    epoch: int
    mixed_precision: str
    last_losses: dict[str, float]


# Debug aid (used by the multi-process test): every rank writes its final weights to this folder.
WEIGHTS_DUMP_ENV = "CYCLEGAN_DUMP_RANK_WEIGHTS"


def dump_rank_weights(rank: int, generators: torch.nn.Module, discriminators: torch.nn.Module) -> None:
    folder = os.environ.get(WEIGHTS_DUMP_ENV)
    if not folder:
        return
    from safetensors.torch import save_file

    tensors = {f"G.{k}": v for k, v in generators.state_dict().items()}
    tensors.update({f"D.{k}": v for k, v in discriminators.state_dict().items()})
    Path(folder).mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(Path(folder) / f"rank{rank}.safetensors")
    )


def _fill_domain_names(cfg: Config) -> None:
    """Take human domain names from dataset.json unless the config sets them."""
    names = read_domain_names(cfg.data.root)
    if cfg.data.domain_a == "A":
        cfg.data.domain_a = names["A"]
    if cfg.data.domain_b == "B":
        cfg.data.domain_b = names["B"]


def _num_workers(cfg: Config, num_processes: int) -> int:
    if cfg.data.num_workers >= 0:
        return cfg.data.num_workers
    return default_num_workers(max(1, available_cpus() // num_processes))


def _cpu_threads(num_processes: int, workers: int) -> int:
    """Intra-op threads per training process: the CPUs left after the loader workers, capped by OMP_NUM_THREADS.

    Over-subscribing (threads + workers > cores) makes OpenMP barriers spin against each other: on
    this 2-core machine `accelerate launch --cpu` (OMP_NUM_THREADS=2) plus one loader worker was 50x
    slower per step than one thread.
    """
    threads = max(1, available_cpus() // num_processes - workers)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return min(threads, int(omp)) if omp.isdigit() and int(omp) > 0 else threads


def train(cfg: Config, resume: str | None = None, *, progress: bool = True) -> RunResult:
    """Train (or continue, with ``resume="latest"`` or a checkpoint path) the run in ``cfg.train.output_dir``.

    Everything that can be wrong with the config or the data raises before the first step:
    ``TrainingSetupError``, ``ConfigError`` or ``DatasetError``.
    """
    cfg.validate()
    t = cfg.train
    run_dir = Path(t.output_dir)
    # cpu=True is also what makes torchrun / several processes on a CPU-only machine use gloo (MULTI_CPU).
    force_cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in (
        "1",
        "true",
        "yes",
    )
    device = PartialState(cpu=force_cpu).device
    use_cuda = device.type == "cuda"
    precision = resolve_mixed_precision(t.mixed_precision, use_cuda)
    check_sizes(cfg)
    dataset = open_train_dataset(cfg)
    _fill_domain_names(cfg)
    fixed_a = fixed_b = None
    if cfg.data.test_images > 0:
        fixed_a = load_fixed_images(cfg.data.root, "A", cfg.data.test_images, cfg.data.crop_size)
        fixed_b = load_fixed_images(cfg.data.root, "B", cfg.data.test_images, cfg.data.crop_size)
    writer = CheckpointWriter(run_dir / "checkpoints", t.keep_last)
    resume_path = resolve_resume(resume, writer.dir) if resume else None

    accelerator = Accelerator(
        mixed_precision=precision,
        cpu=force_cpu,
        log_with="tensorboard" if t.tracker == "tensorboard" else None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        dynamo_backend="inductor" if (t.compile and use_cuda) else "no",
    )
    main = accelerator.is_main_process
    if t.deterministic:
        torch.use_deterministic_algorithms(True)
    set_seed(t.seed, deterministic=t.deterministic)
    workers = _num_workers(cfg, accelerator.num_processes)
    if not use_cuda:
        torch.set_num_threads(_cpu_threads(accelerator.num_processes, workers))
    else:
        torch.backends.cudnn.benchmark = not t.deterministic

    generators = GeneratorPair.from_config(cfg.model)
    discriminators = DiscriminatorPair.from_config(cfg.model)
    if use_cuda and t.channels_last:
        generators.to(memory_format=torch.channels_last)
        discriminators.to(memory_format=torch.channels_last)
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    opt_g = torch.optim.Adam(generators.parameters(), lr=cfg.optim.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminators.parameters(), lr=cfg.optim.lr, betas=betas)
    sampler = EpochShuffleSampler(len(dataset), t.seed, shuffle=not cfg.data.serial_batches)
    loader = DataLoader(
        dataset,
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=use_cuda,
        generator=torch.Generator().manual_seed(t.seed),  # keeps worker seeding off the global RNG
    )
    generators, discriminators, opt_g, opt_d, loader = accelerator.prepare(
        generators, discriminators, opt_g, opt_d, loader
    )
    steps_per_epoch = len(loader)
    # Schedulers are stepped by us (per epoch or per step), not by Accelerate's wrapper, which would
    # step them once per process per call.
    sched_g = build_scheduler(opt_g.optimizer, cfg.optim, steps_per_epoch)
    sched_d = build_scheduler(opt_d.optimizer, cfg.optim, steps_per_epoch)
    state = TrainerState()
    pools = ProcessPools(cfg.loss.pool_size, t.seed, accelerator.process_index, lambda obj: gather_object([obj]))
    raw_generators = accelerator.unwrap_model(generators)
    ema = Ema(raw_generators, t.ema_decay) if t.ema_decay else None
    accelerator.register_for_checkpointing(sched_g, sched_d, state, pools)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    if main:
        writer.clean_partial()
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(run_dir / "config.yaml")
    accelerator.wait_for_everyone()
    if resume_path is not None:
        accelerator.load_state(str(resume_path))
        if ema is not None:
            ema.module.to(accelerator.device)
    step_fn = CycleGANStep(
        accelerator,
        StepModules(generators, discriminators, accelerator.unwrap_model(discriminators), opt_g, opt_d),
        cfg.loss,
        pools,
    )
    accelerator.init_trackers("tensorboard")
    metrics = MetricsLog(run_dir / "metrics.jsonl")
    total_steps = steps_per_epoch * cfg.optim.total_epochs
    if t.max_steps is not None:
        total_steps = min(total_steps, t.max_steps)
    bar = tqdm(total=total_steps, initial=state.step, disable=not (main and progress), unit="it", dynamic_ncols=True)

    def sample_net() -> torch.nn.Module:
        return ema.module if ema is not None else raw_generators

    def save_outputs() -> None:
        info = {"step": state.step, "epoch": state.epoch, "batch_in_epoch": state.batch_in_epoch}
        writer.save(accelerator, state.step, info)
        if main:
            export_generators(sample_net(), cfg, run_dir / "generators", state.step, state.epoch, ema is not None)

    def write_samples() -> None:
        if not main or fixed_a is None:
            return
        with accelerator.autocast():
            grid = sample_grid(sample_net(), fixed_a.to(accelerator.device), fixed_b.to(accelerator.device))
        write_sample(grid, run_dir / "samples" / f"step_{state.step:08d}.png")
        if t.tracker == "tensorboard":
            accelerator.get_tracker("tensorboard").log_images({"samples": grid.unsqueeze(0).numpy()}, step=state.step)

    losses: dict[str, torch.Tensor] = {}
    window_start, window_steps, overhead = time.perf_counter(), 0, 0.0
    while state.step < total_steps:
        # The loader's own epoch counter (it re-applies it at every __iter__), then sampler and dataset
        # explicitly: under DDP Accelerate's set_epoch reaches the sampler but not the dataset.
        loader.set_epoch(state.epoch)
        sampler.set_epoch(state.epoch)
        dataset.set_epoch(state.epoch)
        epoch_loader = accelerator.skip_first_batches(loader, state.batch_in_epoch) if state.batch_in_epoch else loader
        for batch in epoch_loader:
            real_a, real_b = batch["A"], batch["B"]
            if use_cuda and t.channels_last:
                real_a = real_a.contiguous(memory_format=torch.channels_last)
                real_b = real_b.contiguous(memory_format=torch.channels_last)
            losses = step_fn(real_a, real_b)
            if ema is not None:
                ema.update(raw_generators)
            state.step += 1
            state.batch_in_epoch += 1
            window_steps += 1
            if cfg.optim.interval == "step":
                sched_g.step()
                sched_d.step()
            if state.batch_in_epoch >= steps_per_epoch:
                state.epoch += 1
                state.batch_in_epoch = 0
                if cfg.optim.interval == "epoch":
                    sched_g.step()
                    sched_d.step()
            bar.update(1)
            if state.step % t.log_every == 0 or state.step == total_steps:
                elapsed = time.perf_counter() - window_start - overhead
                record = {k: float(v) for k, v in losses.items()}
                record.update(
                    step=state.step,
                    epoch=state.epoch,
                    lr=sched_g.get_last_lr()[0],
                    it_per_s=window_steps / elapsed if elapsed > 0 else 0.0,
                )
                accelerator.log({k: v for k, v in record.items() if k != "step"}, step=state.step)
                if main:
                    metrics.write(record)
                bar.set_postfix(
                    G=f"{record['loss/G_A'] + record['loss/G_B']:.3f}",
                    D=f"{record['loss/D_A'] + record['loss/D_B']:.3f}",
                    cyc=f"{record['loss/cycle_A'] + record['loss/cycle_B']:.3f}",
                    refresh=False,
                )
                window_start, window_steps, overhead = time.perf_counter(), 0, 0.0
            io_start = time.perf_counter()
            if state.step % t.sample_every == 0:
                write_samples()
            if state.step % t.save_every == 0 or state.step == total_steps:
                save_outputs()
            overhead += time.perf_counter() - io_start  # it/s counts training only
            if state.step >= total_steps:
                break
    bar.close()
    if state.step % t.sample_every != 0:
        write_samples()
    save_outputs()  # no-op for the checkpoint when the last step was already saved
    accelerator.end_training()
    dump_rank_weights(accelerator.process_index, raw_generators, accelerator.unwrap_model(discriminators))
    last = {k: float(v) for k, v in losses.items()}
    if last and not all(math.isfinite(v) for v in last.values()):
        accelerator.print(f"warning: non-finite losses at step {state.step}: {last}")
    return RunResult(run_dir, state.step, state.epoch, precision, last)
