"""Everything a run needs before its first step, built in one call: :func:`setup` returns a :class:`TrainingRun`.

Order matters and is deliberate: every check that can fail (config, sizes, dataset, run folder, resume
compatibility) runs before anything is written; then Accelerate, the networks and optimizers are prepared,
the objects a checkpoint must also hold are registered, and a resumed run loads its newest loadable
checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import ProjectConfiguration, gather_object, set_seed
from torch import nn
from torch.optim import Optimizer
from torch.utils.data import DataLoader

from cyclegan.config import Config
from cyclegan.contract.files import FolderLock, ensure_writable_dir, remove_stale_temporaries
from cyclegan.contract.layout import read_domain_names
from cyclegan.contract.runtime import available_cpus
from cyclegan.data import UnpairedImageDataset, default_num_workers, load_fixed_images
from cyclegan.schedulers import build_scheduler
from cyclegan.training.checkpoint import CheckpointWriter, load_first_loadable, resume_candidates
from cyclegan.training.nets import DiscriminatorPair, Ema, GeneratorPair
from cyclegan.training.outputs import sample_grid
from cyclegan.training.precision import resolve_mixed_precision
from cyclegan.training.preflight import check_networks_run, check_run_folder, check_sizes, open_train_dataset
from cyclegan.training.state import EpochShuffleSampler, ProcessPools, Schedulers, TrainerState
from cyclegan.training.step import CycleGANStep, StepModules


@dataclass
class TrainingRun:
    """The objects of one run; ``generators``/``discriminators`` are the prepared (possibly DDP) modules."""

    cfg: Config
    dir: Path
    accelerator: Accelerator
    precision: str
    dataset: UnpairedImageDataset
    sampler: EpochShuffleSampler
    loader: DataLoader
    generators: nn.Module
    discriminators: nn.Module
    step: CycleGANStep
    schedulers: Schedulers
    state: TrainerState
    ema: Ema | None
    checkpoints: CheckpointWriter
    fixed_images: tuple[torch.Tensor, torch.Tensor] | None  # test images for sample grids
    total_steps: int
    lock: FolderLock | None = None  # the run folder's lock (main process), released when training ends

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    @property
    def export_generators(self) -> nn.Module:
        """What samples and the exported generators show: the EMA weights when EMA is on."""
        return self.ema.module if self.ema is not None else self.accelerator.unwrap_model(self.generators)

    def batches(self):
        """This epoch's batches as (real_a, real_b); a resumed run skips the ones its checkpoint had consumed."""
        state = self.state
        # The loader's own epoch counter (re-applied at every __iter__), then sampler and dataset explicitly:
        # under DDP Accelerate's set_epoch reaches the sampler but not the dataset.
        self.loader.set_epoch(state.epoch)
        self.sampler.set_epoch(state.epoch)
        self.dataset.set_epoch(state.epoch)
        loader = self.loader
        if state.batch_in_epoch:
            loader = self.accelerator.skip_first_batches(loader, state.batch_in_epoch)
        channels_last = self.accelerator.device.type == "cuda" and self.cfg.train.channels_last
        for batch in loader:
            real_a, real_b = batch["A"], batch["B"]
            if channels_last:
                real_a = real_a.contiguous(memory_format=torch.channels_last)
                real_b = real_b.contiguous(memory_format=torch.channels_last)
            yield real_a, real_b

    def sample_grid(self) -> torch.Tensor | None:
        if self.fixed_images is None:
            return None
        device = self.accelerator.device
        with self.accelerator.autocast():
            return sample_grid(self.export_generators, *(t.to(device) for t in self.fixed_images))


def setup(cfg: Config, resume: str | None) -> TrainingRun:
    """Check, build and (with ``resume``) restore everything; raises ToolkitError subclasses before any write."""
    cfg.validate()
    t, run_dir = cfg.train, Path(cfg.train.output_dir)
    # cpu=True is also what makes torchrun / several processes on a CPU-only machine use gloo (MULTI_CPU).
    force_cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    use_cuda = PartialState(cpu=force_cpu).device.type == "cuda"
    precision = resolve_mixed_precision(t.mixed_precision, use_cuda)
    check_sizes(cfg)
    check_networks_run(cfg)
    dataset = open_train_dataset(cfg)
    _fill_domain_names(cfg)
    # One run per folder at a time (the main process holds the lock until train() ends), checked under it.
    lock = (
        FolderLock(ensure_writable_dir(run_dir, "train.output_dir"), "training")
        if PartialState().is_main_process
        else None
    )
    if lock is not None:
        lock.acquire()
    try:
        return _build(cfg, resume, dataset, force_cpu, use_cuda, precision, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _build(
    cfg: Config,
    resume: str | None,
    dataset: UnpairedImageDataset,
    force_cpu: bool,
    use_cuda: bool,
    precision: str,
    lock: FolderLock | None,
) -> TrainingRun:
    """The rest of :func:`setup`, under the run folder's lock."""
    t, run_dir = cfg.train, Path(cfg.train.output_dir)
    check_run_folder(cfg, resume)
    checkpoints = CheckpointWriter(run_dir / "checkpoints", t.keep_last)
    candidates = resume_candidates(resume, checkpoints.dir) if resume else []
    fixed = None
    if cfg.data.test_images > 0:
        fixed = tuple(load_fixed_images(cfg.data.root, d, cfg.data.test_images, cfg.data.crop_size) for d in "AB")

    accelerator = Accelerator(
        mixed_precision=precision,
        cpu=force_cpu,
        log_with=t.trackers or None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        dynamo_backend="inductor" if (t.compile and use_cuda) else "no",
    )
    workers = _seed_and_threads(cfg, accelerator, use_cuda)
    sampler = EpochShuffleSampler(len(dataset), t.seed, shuffle=not cfg.data.serial_batches)
    loader = DataLoader(
        dataset,
        batch_size=t.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=use_cuda,
        generator=torch.Generator().manual_seed(t.seed),  # keeps worker seeding off the global RNG
    )
    generators, discriminators, opt_g, opt_d = _networks(cfg, channels_last=use_cuda and t.channels_last)
    generators, discriminators, opt_g, opt_d, loader = accelerator.prepare(
        generators, discriminators, opt_g, opt_d, loader
    )
    schedulers = Schedulers(
        build_scheduler(opt_g.optimizer, cfg.optim, len(loader)),
        build_scheduler(opt_d.optimizer, cfg.optim, len(loader)),
        cfg.optim.interval,
    )
    state = TrainerState()
    pools = ProcessPools(cfg.loss.pool_size, t.seed, accelerator.process_index, lambda obj: gather_object([obj]))
    ema = Ema(accelerator.unwrap_model(generators), t.ema_decay) if t.ema_decay else None
    accelerator.register_for_checkpointing(schedulers.generators, schedulers.discriminators, state, pools)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    if accelerator.is_main_process:  # the first writes of the run
        checkpoints.clean_partial()
        remove_stale_temporaries(run_dir)
        if (run_dir / "generators").is_dir():
            remove_stale_temporaries(run_dir / "generators")
        cfg.save(run_dir / "config.yaml")
    accelerator.wait_for_everyone()
    if candidates:
        load_first_loadable(candidates, lambda path: accelerator.load_state(str(path)), accelerator.print)
        if ema is not None:
            ema.module.to(accelerator.device)
    accelerator.init_trackers(cfg.name, config=_tracker_config(cfg))

    modules = StepModules(generators, discriminators, accelerator.unwrap_model(discriminators), opt_g, opt_d)
    total_steps = len(loader) * cfg.optim.total_epochs
    return TrainingRun(
        cfg=cfg, dir=run_dir, accelerator=accelerator, precision=precision, dataset=dataset, sampler=sampler,
        loader=loader, generators=generators, discriminators=discriminators, schedulers=schedulers, state=state,
        step=CycleGANStep(accelerator, modules, cfg.loss, pools), ema=ema, checkpoints=checkpoints,
        fixed_images=fixed, lock=lock,  # type: ignore[arg-type]
        total_steps=min(total_steps, t.max_steps) if t.max_steps is not None else total_steps,
    )  # fmt: skip


def _networks(cfg: Config, *, channels_last: bool) -> tuple[nn.Module, nn.Module, Optimizer, Optimizer]:
    """The generator pair, the discriminator pair and their Adam optimizers (before ``prepare``)."""
    generators, discriminators = GeneratorPair.from_config(cfg.model), DiscriminatorPair.from_config(cfg.model)
    if channels_last:
        generators.to(memory_format=torch.channels_last)
        discriminators.to(memory_format=torch.channels_last)
    betas = (cfg.optim.beta1, cfg.optim.beta2)
    opt_g = torch.optim.Adam(generators.parameters(), lr=cfg.optim.lr, betas=betas)
    opt_d = torch.optim.Adam(discriminators.parameters(), lr=cfg.optim.lr, betas=betas)
    return generators, discriminators, opt_g, opt_d


def _seed_and_threads(cfg: Config, accelerator: Accelerator, use_cuda: bool) -> int:
    """Seed everything, set determinism and the CPU thread policy; returns the loader's worker count."""
    t = cfg.train
    if t.deterministic:
        torch.use_deterministic_algorithms(True)
    set_seed(t.seed, deterministic=t.deterministic)
    workers = _num_workers(cfg, accelerator.num_processes)
    if use_cuda:
        torch.backends.cudnn.benchmark = not t.deterministic
    else:
        torch.set_num_threads(_cpu_threads(accelerator.num_processes, workers))
    return workers


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
    a 2-core machine `accelerate launch --cpu` (OMP_NUM_THREADS=2) plus one loader worker was 50x
    slower per step than one thread.
    """
    threads = max(1, available_cpus() // num_processes - workers)
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return min(threads, int(omp)) if omp.isdigit() and int(omp) > 0 else threads


def _tracker_config(cfg: Config) -> dict[str, str | int | float | bool]:
    """The config flattened to ``section.key`` scalars, as trackers' hyper-parameter tables want it."""
    flat: dict[str, str | int | float | bool] = {"name": cfg.name}
    for section, values in cfg.to_dict().items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[f"{section}.{key}"] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return flat
