"""Everything a run needs before its first step, built in one call: :func:`setup` returns a :class:`TrainingRun`.

Order matters and is deliberate: every check that can fail (config, sizes, dataset, run folder, resume
compatibility) runs before anything is written; then Accelerate, the networks and optimizers are prepared,
the objects a checkpoint must also hold are registered, and a resumed run loads its newest loadable
checkpoint. With several processes (or nodes) the checks' outcomes are shared first, so that every process
takes the same way (:mod:`cyclegan.training.nodes`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
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
from cyclegan.training import evaluate, nodes
from cyclegan.training.checkpoint import CheckpointWriter, load_first_loadable, resume_candidates, writes_run_files
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
    """Check, build and (with ``resume``) restore everything; raises ToolkitError subclasses before any write.

    The main process holds the run folder's lock (one run per folder at a time) from before the run-folder
    check until :func:`cyclegan.training.trainer.train` ends.
    """
    held: list[FolderLock] = []
    try:
        return _setup(cfg, resume, held)
    except BaseException:
        for lock in held:
            lock.release()
        raise


def _forget_previous_in_process_run(precision: str) -> None:
    """Let a second run in the same Python process choose its own mixed precision.

    Accelerate keeps one ``AcceleratorState`` per process and refuses a new ``Accelerator`` with another precision
    ("restart your runtime"). With one process nothing else holds it, so it is cleared, as Accelerate's own test
    cases do between tests; the process group (``PartialState``) is kept."""
    state = AcceleratorState._shared_state
    if state and PartialState().num_processes == 1 and state.get("_mixed_precision") != precision:
        AcceleratorState._reset_state(reset_partial_state=False)


def _setup(cfg: Config, resume: str | None, held: list[FolderLock]) -> TrainingRun:
    cfg.validate()
    t, run_dir = cfg.train, Path(cfg.train.output_dir)
    # cpu=True is also what makes torchrun / several processes on a CPU-only machine use gloo (MULTI_CPU).
    force_cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    process = PartialState(cpu=force_cpu, timeout=timedelta(seconds=t.ddp_timeout_s))  # joins the process group
    use_cuda = process.device.type == "cuda"
    precision = resolve_mixed_precision(t.mixed_precision, use_cuda)
    checkpoints = CheckpointWriter(run_dir / "checkpoints", t.keep_last)
    with nodes.all_or_none():  # a check failing on one node stops every process, with that node's message
        dataset, candidates, fixed = _checked_inputs(cfg, resume, checkpoints.dir)
    for warning in dataset.squeeze_warnings():
        process.print(warning)
    nodes.check_same_dataset(Path(cfg.data.root), dataset.paths_a + dataset.paths_b)
    if resume:
        candidates = nodes.agree_on_resume(candidates, resume, checkpoints.dir)
    node_local = nodes.output_is_node_local(run_dir)  # the last check: it writes a probe file
    with nodes.all_or_none():  # one run per folder at a time: the main process locks it and checks it again
        if PartialState().is_main_process:  # (a run started since the first check is caught here)
            held.append(FolderLock(ensure_writable_dir(run_dir, "train.output_dir"), "training").acquire())
            check_run_folder(cfg, resume)

    _forget_previous_in_process_run(precision)
    accelerator = Accelerator(
        mixed_precision=precision,
        cpu=force_cpu,
        log_with=t.trackers or None,
        project_config=ProjectConfiguration(
            project_dir=str(run_dir), logging_dir=str(run_dir / "logs"), save_on_each_node=node_local
        ),
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

    if writes_run_files(accelerator):  # the first writes of the run (on every node without a shared folder)
        checkpoints.clean_partial()
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)  # of generators, samples, config.yaml written by a killed run
        if (run_dir / "generators").is_dir():
            remove_stale_temporaries(run_dir / "generators")
        cfg.save(run_dir / "config.yaml")
    accelerator.wait_for_everyone()
    if candidates:
        loaded = load_first_loadable(
            candidates, lambda path: accelerator.load_state(str(path)), accelerator.print, nodes.gather_problems
        )
        nodes.check_same_checkpoint(loaded, state.step, generators, discriminators)
        checkpoints.saved_step = state.step
        if ema is not None:
            ema.module.to(accelerator.device)
    accelerator.init_trackers(cfg.name, config=_tracker_config(cfg))

    modules = StepModules(generators, discriminators, accelerator.unwrap_model(discriminators), opt_g, opt_d)
    step = CycleGANStep(accelerator, modules, cfg.loss, pools, t.diffaugment_policy)
    total_steps = len(loader) * cfg.optim.total_epochs
    return TrainingRun(
        cfg=cfg, dir=run_dir, accelerator=accelerator, precision=precision, dataset=dataset, sampler=sampler,
        loader=loader, generators=generators, discriminators=discriminators, schedulers=schedulers, state=state,
        step=step, ema=ema, checkpoints=checkpoints,
        fixed_images=fixed, lock=held[0] if held else None,  # type: ignore[arg-type]
        total_steps=min(total_steps, t.max_steps) if t.max_steps is not None else total_steps,
    )  # fmt: skip


def _checked_inputs(
    cfg: Config, resume: str | None, ckpt_dir: Path
) -> tuple[UnpairedImageDataset, list[Path], tuple[torch.Tensor, torch.Tensor] | None]:
    """The checks that read this node's disk: sizes, dataset, run folder; the dataset, resume candidates and
    the fixed test images."""
    check_sizes(cfg)
    check_networks_run(cfg)
    evaluate.check(cfg)  # train.eval_metric=kid needs the Inception weights on disk
    dataset = open_train_dataset(cfg)
    _fill_domain_names(cfg)
    check_run_folder(cfg, resume)
    candidates = resume_candidates(resume, ckpt_dir, none_ok=PartialState().num_processes > 1) if resume else []
    fixed = None
    if cfg.data.test_images > 0:
        fixed = tuple(load_fixed_images(cfg.data.root, d, cfg.data.test_images, cfg.data.crop_size) for d in "AB")
    return dataset, candidates, fixed  # type: ignore[return-value]


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
    """Intra-op threads per training process, capped by OMP_NUM_THREADS: the CPUs the loader workers leave.

    Measured on a 2-core AMD EPYC, idle, tiny_cpu at 64 px, 150 steps (two rounds each, one run): 1 thread +
    1 worker 15.1-15.2 s; 2 threads + 1 worker with OMP_WAIT_POLICY=PASSIVE 32.1-33.5 s; with another training
    job beside it, 16.5-16.8 s against 138-139 s. Over-subscribed threads wait on each other at every barrier.
    """
    cpus = max(1, available_cpus() // num_processes)
    threads = max(1, cpus - workers)
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
