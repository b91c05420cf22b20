"""Seconds per iteration and peak memory of a full CycleGAN step (G_A, G_B, D_A, D_B; batch 1; ResNet-9).

Compares plain fp32 eager (the original code's way) with the project's default on this machine
(``train.mixed_precision=auto``: bf16 autocast where the CPU/GPU computes bf16 natively, else fp32;
channels_last and cudnn.benchmark on CUDA) and, for reference, forced bf16. On a CUDA device it also
runs fp16 and bf16 + channels_last + torch.compile. Each configuration runs in its own process so
the peak RSS (``VmHWM``) belongs to that configuration alone.

    python benchmarks/train_step.py [--sizes 256 128] [--iters 3] [--warmup 1]

``--policy`` measures the CPU thread policy instead, on the demo's network (``configs/tiny_cpu.yaml``:
ResNet-6, 16 filters) with the real data path (JPEG files, ``UnpairedImageDataset``, a DataLoader iterated
epoch by epoch as the trainer does): (compute threads, loader workers) = (2, 0), (1, 1), (2, 1) at 64 px
(the demo's crops) and 256 px, each configuration in its own process, interleaved round-robin over
``--rounds`` rounds (best median kept), then eager vs channels_last vs ``torch.compile`` (inductor) at the
best policy. It prints the old policy (one thread per process when one worker loads) next to the chosen one.

    python benchmarks/train_step.py --policy [--policy-sizes 64 256] [--iters 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(size: int, mode: str, iters: int, warmup: int, threads: int) -> dict:
    sys.path.insert(0, str(REPO))
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from accelerate import Accelerator

    from cyclegan.config import Config
    from cyclegan.contract.runtime import peak_rss_mib
    from cyclegan.training.nets import DiscriminatorPair, GeneratorPair
    from cyclegan.training.precision import resolve_mixed_precision
    from cyclegan.training.state import ProcessPools
    from cyclegan.training.step import CycleGANStep, StepModules

    cuda = torch.cuda.is_available()
    cfg = Config()  # paper defaults: resnet_9blocks, ngf/ndf 64, instance norm, LSGAN, lambdas 10/10/0.5
    precision = {
        "fp32": "no",
        "default": resolve_mixed_precision("auto", cuda),
        "bf16": "bf16",
        "fp16": "fp16",
        "bf16-cl-compile": "bf16",
    }[mode]
    channels_last = cuda and mode in ("default", "fp16", "bf16", "bf16-cl-compile")
    compile_ = mode == "bf16-cl-compile"
    if cuda:
        torch.backends.cudnn.benchmark = mode != "fp32"
    torch.manual_seed(0)
    acc = Accelerator(mixed_precision=precision, cpu=not cuda, dynamo_backend="inductor" if compile_ else "no")
    gens, discs = GeneratorPair.from_config(cfg.model), DiscriminatorPair.from_config(cfg.model)
    if channels_last:
        gens.to(memory_format=torch.channels_last)
        discs.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(gens.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discs.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gens, discs, opt_g, opt_d = acc.prepare(gens, discs, opt_g, opt_d)
    pools = ProcessPools(cfg.loss.pool_size, 0, 0, lambda obj: [obj])
    step = CycleGANStep(acc, StepModules(gens, discs, acc.unwrap_model(discs), opt_g, opt_d), cfg.loss, pools)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    real_a = (torch.rand(1, 3, size, size, device=acc.device) * 2 - 1).contiguous(memory_format=fmt)
    real_b = (torch.rand(1, 3, size, size, device=acc.device) * 2 - 1).contiguous(memory_format=fmt)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        step(real_a, real_b)
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        losses = step(real_a, real_b)
        sync()
        times.append(time.perf_counter() - start)
    finite = all(torch.isfinite(v).item() for v in losses.values())
    rss_mib = peak_rss_mib()
    return {
        "size": size,
        "mode": mode,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile_,
        "s_per_it": sorted(times)[len(times) // 2],
        "peak_rss_mib": rss_mib,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "threads": torch.get_num_threads(),
        "finite": finite,
    }


def policy_child(size: int, threads: int, workers: int, form: str, iters: int, warmup: int, data: str) -> dict:
    """Seconds per training step (data loading included) of the demo network at ``size`` px crops."""
    sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(threads)
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from cyclegan.config import load_config
    from cyclegan.data import UnpairedImageDataset
    from cyclegan.training.nets import DiscriminatorPair, GeneratorPair
    from cyclegan.training.state import ProcessPools
    from cyclegan.training.step import CycleGANStep, StepModules

    cfg = load_config(
        REPO / "configs" / "tiny_cpu.yaml",
        [f"data.root={data}", f"data.crop_size={size}", f"data.load_size={size + size // 8}"],
    )
    torch.manual_seed(0)
    acc = Accelerator(mixed_precision="no", cpu=True, dynamo_backend="inductor" if form == "compile" else "no")
    gens, discs = GeneratorPair.from_config(cfg.model), DiscriminatorPair.from_config(cfg.model)
    channels_last = form == "channels_last"
    if channels_last:
        gens.to(memory_format=torch.channels_last)
        discs.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(gens.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discs.parameters(), lr=2e-4, betas=(0.5, 0.999))
    dataset = UnpairedImageDataset(data, "train", cfg.data, seed=0)
    loader = DataLoader(dataset, batch_size=1, shuffle=True, num_workers=workers)
    gens, discs, opt_g, opt_d = acc.prepare(gens, discs, opt_g, opt_d)
    pools = ProcessPools(cfg.loss.pool_size, 0, 0, lambda obj: [obj])
    step = CycleGANStep(acc, StepModules(gens, discs, acc.unwrap_model(discs), opt_g, opt_d), cfg.loss, pools)

    def batches():
        epoch = 0
        while True:  # a new iterator every epoch, as the trainer does (workers restart each epoch)
            dataset.set_epoch(epoch)
            for batch in loader:
                a, b = batch["A"], batch["B"]
                if channels_last:
                    a, b = (
                        a.contiguous(memory_format=torch.channels_last),
                        b.contiguous(memory_format=torch.channels_last),
                    )
                yield a, b
            epoch += 1

    source = batches()
    start = time.perf_counter()
    for _ in range(warmup):
        step(*next(source))
    warm_s = time.perf_counter() - start
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        losses = step(*next(source))
        times.append(time.perf_counter() - start)
    return {
        "size": size,
        "threads": threads,
        "workers": workers,
        "form": form,
        "s_per_it": sorted(times)[len(times) // 2],
        "mean_s_per_it": sum(times) / len(times),
        "warmup_s": warm_s,
        "finite": all(torch.isfinite(v).item() for v in losses.values()),
    }


def make_policy_data(root: Path, size: int, count: int = 60) -> Path:
    """A dataset of ``count`` JPEG photos-like scenes per domain at the loader's load size."""
    import numpy as np
    from PIL import Image

    folder = root / f"data{size}"
    if folder.exists():
        return folder
    rng = np.random.default_rng(size)
    load = size + size // 8
    for domain in ("A", "B"):
        (folder / f"train{domain}").mkdir(parents=True)
        for i in range(count):
            yy, xx = np.mgrid[0:load, 0:load] / load
            image = np.stack(
                [np.sin(xx * rng.uniform(2, 9) + c) * np.cos(yy * rng.uniform(2, 9)) for c in range(3)], -1
            )
            image = ((image + 1) * 127.5 + rng.normal(0, 8, image.shape)).clip(0, 255).astype(np.uint8)
            Image.fromarray(image).save(folder / f"train{domain}" / f"{i:03d}.jpg", quality=90)
    return folder


def run_policy(
    sizes: list[int], iters: int, warmup: int, rounds: int, forms: list[str], only: list[str] | None = None
) -> None:
    import os
    import tempfile

    from cyclegan.contract.runtime import available_cpus, cpu_model
    from cyclegan.training.setup import _cpu_threads, _num_workers

    def child(size: int, threads: int, workers: int, form: str, data: Path, n: int, w: int, wait: str = "") -> dict:
        cmd = [sys.executable, __file__, "--policy-child", json.dumps([size, threads, workers, form, n, w, str(data)])]
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if wait:  # read by OpenMP when torch loads: only a fresh process can change it
            env["OMP_WAIT_POLICY"] = wait
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
        return json.loads(proc.stdout.strip().splitlines()[-1])

    from cyclegan.config import Config

    cfg = Config()
    workers_now = _num_workers(cfg, 1)
    cpus = available_cpus()
    old_policy = (max(1, cpus - workers_now), workers_now, "")  # before issue 14: spinning OpenMP, CPUs - workers
    current = {
        size: (_cpu_threads(1, workers_now), workers_now, os.environ.get("OMP_WAIT_POLICY", "").upper())
        for size in sizes
    }
    print(
        f"CPU {cpu_model()}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; "
        f"old policy: {old_policy[0]} thread(s), {old_policy[1]} worker(s), OpenMP default wait; the trainer's "
        "policy now: "
        + "; ".join(
            f"{k} px {t} thread(s), {w} worker(s), OMP_WAIT_POLICY {p or 'default'}" for k, (t, w, p) in current.items()
        )
    )
    # (threads, workers, OpenMP wait policy): "" = OpenMP's default (threads spin at barriers), PASSIVE = they sleep
    policies = [(2, 0, ""), (1, 1, ""), (2, 1, ""), (2, 0, "PASSIVE"), (1, 1, "PASSIVE"), (2, 1, "PASSIVE")]
    if only:  # e.g. 1,1 2,1,PASSIVE
        policies = [(int(p.split(",")[0]), int(p.split(",")[1]), (p.split(",") + [""])[2].upper()) for p in only]
    for policy in (old_policy, *current.values()):
        if policy not in policies:
            policies.append(policy)
    with tempfile.TemporaryDirectory(prefix="cyclegan-policy-") as tmp:
        best: dict[tuple[int, int, int, str], dict] = {}
        for round_ in range(rounds):
            for size in sizes:
                data = make_policy_data(Path(tmp), size)
                for threads, workers, wait in policies:
                    r = child(size, threads, workers, "eager", data, iters, warmup, wait)
                    key = (size, threads, workers, wait)
                    if "error" in r:
                        print(f"{size} px ({threads}, {workers}): error {r['error']}")
                        continue
                    if key not in best or r["s_per_it"] < best[key]["s_per_it"]:
                        best[key] = r
                    print(
                        f"round {round_ + 1}: {size:>4} px threads {threads} workers {workers} "
                        f"OMP wait {wait or 'default'}: "
                        f"{r['s_per_it'] * 1000:7.1f} ms/step (median of {iters}; load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
        print(f"\n{'size':>5} {'threads':>7} {'workers':>7} {'OMP wait':<9} {'ms/step':>8} {'vs old policy':>14}")
        chosen = {}
        for size in sizes:
            rows = {k[1:]: v for k, v in best.items() if k[0] == size}
            if not rows:
                continue
            old = rows.get(old_policy) or next(iter(rows.values()))
            for (threads, workers, wait), r in rows.items():
                mark = "  <- old policy" if (threads, workers, wait) == old_policy else ""
                mark += "  <- the trainer's policy now" if (threads, workers, wait) == current[size] else ""
                print(
                    f"{size:>5} {threads:>7} {workers:>7} {wait or 'default':<9} {r['s_per_it'] * 1000:>8.1f} "
                    f"{old['s_per_it'] / r['s_per_it']:>13.2f}x{mark}"
                )
            chosen[size] = min(rows, key=lambda p: rows[p]["s_per_it"])
            print(
                f"  {size} px: fastest: threads {chosen[size][0]}, workers {chosen[size][1]}, "
                f"OMP_WAIT_POLICY {chosen[size][2] or 'default'}"
            )
        for size in sizes:
            if size not in chosen:
                continue
            threads, workers, wait = chosen[size]
            data = make_policy_data(Path(tmp), size)
            base = best[(size, threads, workers, wait)]
            results = {"eager": base}
            for form in forms:
                for _ in range(rounds):
                    r = child(size, threads, workers, form, data, iters, warmup if form != "compile" else 3, wait)
                    if "error" in r:
                        print(f"{size} px {form}: error {r['error']}")
                        break
                    if form not in results or r["s_per_it"] < results[form]["s_per_it"]:
                        results[form] = r
                    e = child(size, threads, workers, "eager", data, iters, warmup, wait)  # interleaved baseline
                    if "error" not in e and e["s_per_it"] < results["eager"]["s_per_it"]:
                        results["eager"] = e
            for form, r in results.items():
                extra = f" (first steps incl. compile {r['warmup_s']:.0f} s)" if form == "compile" else ""
                print(
                    f"{size:>5} {threads:>7} {workers:>7} {form:<14} {r['s_per_it'] * 1000:>8.1f} "
                    f"{results['eager']['s_per_it'] / r['s_per_it']:>13.2f}x vs eager{extra}"
                )


def run_child(size: int, mode: str, iters: int, warmup: int, threads: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--sizes",
        str(size),
        "--modes",
        mode,
        "--iters",
        str(iters),
        "--warmup",
        str(warmup),
        "--threads",
        str(threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        return {"size": size, "mode": mode, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--modes", nargs="+", default=None, help="fp32 default bf16 (+ fp16 bf16-cl-compile on CUDA)")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--policy", action="store_true", help="CPU thread policy, channels_last, torch.compile")
    parser.add_argument("--policy-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--forms", nargs="*", default=["channels_last", "compile"])
    parser.add_argument("--policies", nargs="*", default=None, help="threads,workers[,PASSIVE] to measure")
    parser.add_argument("--policy-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.policy_child:
        size, threads, workers, form, n, w, data = json.loads(args.policy_child)
        print(json.dumps(policy_child(size, threads, workers, form, n, w, data)))
        return
    if args.policy:
        run_policy(args.policy_sizes, args.iters, args.warmup, args.rounds, args.forms, args.policies)
        return
    if args.child:
        print(json.dumps(child(args.sizes[0], args.modes[0], args.iters, args.warmup, args.threads)))
        return

    import torch

    from cyclegan.training.precision import cpu_has_native_bf16, resolve_mixed_precision

    cuda = torch.cuda.is_available()
    modes = args.modes or (["fp32", "default", "bf16"] + (["fp16", "bf16-cl-compile"] if cuda else []))
    device = torch.cuda.get_device_name() if cuda else f"CPU {platform.processor() or platform.machine()}"
    print(
        f"device: {device}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"native bf16 on CPU: {cpu_has_native_bf16()}; default precision: {resolve_mixed_precision('auto', cuda)}"
    )
    print(
        f"{'size':>5} {'mode':<16} {'precision':<9} {'s/it':>8} {'peak RSS MiB':>13} {'peak CUDA MiB':>14} "
        "threads finite"
    )
    results = []
    for size in args.sizes:
        for mode in modes:
            r = run_child(size, mode, args.iters, args.warmup, args.threads)
            results.append(r)
            if "error" in r:
                print(f"{size:>5} {mode:<16} error: {r['error']}")
                continue
            cuda_mem = f"{r['peak_cuda_mib']:.0f}" if r["peak_cuda_mib"] is not None else "-"
            print(
                f"{size:>5} {mode:<16} {r['precision']:<9} {r['s_per_it']:>8.3f} {r['peak_rss_mib']:>13.0f} "
                f"{cuda_mem:>14} {r['threads']:>7} {r['finite']}",
                flush=True,
            )
    for size in args.sizes:
        by_mode = {r["mode"]: r for r in results if r["size"] == size and "error" not in r}
        if "fp32" in by_mode:
            for mode, r in by_mode.items():
                if mode != "fp32":
                    print(
                        f"{size} px: fp32 eager / {mode} = {by_mode['fp32']['s_per_it'] / r['s_per_it']:.2f}x speed-up"
                    )


if __name__ == "__main__":
    main()
