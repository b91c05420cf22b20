"""Seconds per iteration and peak memory of a full CycleGAN step (G_A, G_B, D_A, D_B; batch 1; ResNet-9).

Compares plain fp32 eager (the original code's way) with the project's default on this machine
(``train.mixed_precision=auto``: bf16 autocast where the CPU/GPU computes bf16 natively, else fp32;
channels_last and cudnn.benchmark on CUDA) and, for reference, forced bf16. On a CUDA device it also
runs fp16 and bf16 + channels_last + torch.compile. Each configuration runs in its own process so
the peak RSS (getrusage ru_maxrss) belongs to that configuration alone.

    python benchmarks/train_step.py [--sizes 256 128] [--iters 3] [--warmup 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
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
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    args = parser.parse_args()
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
