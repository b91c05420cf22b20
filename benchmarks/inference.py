"""Inference latency of the ResNet-9 generator (ngf 64) on this machine, per runtime and precision.

Runs, in one process and on the same inputs: torch eager fp32 (the reference), torch eager with
bf16 autocast (a reference point only, not exported), and onnxruntime fp32 / fp16 / int8 (the models
``cyclegan export`` writes, built with the same code path). For every size it reports the best-of-N
latency (min: the least disturbed by other load on a shared machine; the runs are interleaved
round-robin so that background load hits all variants alike) and PSNR against torch fp32.

Weights: no trained checkpoint ships with the repo. Random initialisation (CycleGAN's N(0, 0.02))
makes the network an ill-conditioned noise amplifier, which exaggerates quantisation error (int8
PSNR here is a pessimistic bound). ``--fit-steps N`` first fits the generator briefly to a smooth
image-to-image mapping (colour permutation of synthetic scenes); it is off by default because on 2
shared cores each step takes seconds.
``--checkpoint G.safetensors`` benchmarks a real trained generator.

    python benchmarks/inference.py                       # 256/512/1024 px: ~5 min on 2 idle cores, ~8 busy
    python benchmarks/inference.py --sizes 256 512 --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cyclegan.contract.card import GeneratorCard  # noqa: E402
from cyclegan.models import init_weights, make_generator  # noqa: E402
from export import onnx_export, quantize, verify  # noqa: E402

Runner = Callable[[np.ndarray], np.ndarray]


def scene(rng: np.random.Generator, side: int) -> np.ndarray:
    """A smooth synthetic photo-like image in [-1, 1], [3, side, side]: gradient, blobs, soft edges."""
    yy, xx = np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side), indexing="ij")
    c0, c1 = rng.uniform(-1, 1, (3, 1, 1)), rng.uniform(-1, 1, (3, 1, 1))
    image = c0 * (1 - (xx + yy) / 2) + c1 * (xx + yy) / 2
    for _ in range(6):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        blob = 1 / (1 + np.exp(np.clip(((yy - cy) ** 2 + (xx - cx) ** 2 - r**2) * 400, -50, 50)))
        image = image * (1 - blob) + rng.uniform(-1, 1, (3, 1, 1)) * blob
    image += 0.05 * np.sin(xx * rng.uniform(20, 80)) * np.cos(yy * rng.uniform(20, 80))  # some texture
    return np.clip(image, -1, 1).astype(np.float32)


def build_model(checkpoint: Path | None, fit_steps: int, seed: int) -> tuple[torch.nn.Module, GeneratorCard, str]:
    if checkpoint is not None:
        from cyclegan.generator_io import load_generator

        module, card = load_generator(checkpoint)
        return module, card, f"checkpoint {checkpoint}"
    torch.manual_seed(seed)
    module = init_weights(make_generator("resnet_9blocks", ngf=64), "normal", 0.02)
    card = GeneratorCard(generator="resnet_9blocks", ngf=64)
    what = "random init N(0, 0.02)"
    if fit_steps > 0:
        start = time.perf_counter()
        loss = fit(module, fit_steps, seed)
        seconds = time.perf_counter() - start
        what = f"random init + {fit_steps} Adam steps on a colour-permutation task (L1 {loss:.3f}, {seconds:.0f} s)"
    return module.eval(), card, what


def fit(module: torch.nn.Module, steps: int, seed: int, side: int = 96) -> float:
    """A brief fit so activations look like a trained network's (smooth outputs, sane ranges)."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3, betas=(0.5, 0.999))
    module.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        x = torch.from_numpy(np.stack([scene(rng, side) for _ in range(2)]))
        target = x[:, [1, 2, 0]]
        loss = torch.nn.functional.l1_loss(module(x), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    module.eval()
    return float(loss.detach())


def build_runners(
    module: torch.nn.Module,
    card: GeneratorCard,
    tmp: Path,
    threads: int,
    precisions: list[str],
    calibration: np.ndarray,
) -> dict[str, Runner]:
    def torch_fp32(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    def torch_bf16(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return module(torch.from_numpy(x)).float().numpy()

    runners: dict[str, Runner] = {"torch fp32": torch_fp32}
    step = time.perf_counter()
    if "bf16" in precisions:
        runners["torch bf16 autocast"] = torch_bf16
    proto, exporter = onnx_export.to_onnx_proto(module, card)
    fp32_path = tmp / "fp32.onnx"
    onnx.save_model(proto, str(fp32_path))
    models = {"ort fp32": fp32_path}
    if "fp16" in precisions:
        models["ort fp16"] = tmp / "fp16.onnx"
        onnx.save_model(quantize.to_fp16(onnx.load(str(fp32_path))), str(models["ort fp16"]))
    if "int8" in precisions:
        models["ort int8"] = tmp / "int8.onnx"
        onnx.save_model(quantize.to_int8(fp32_path, calibration), str(models["ort int8"]))
    print(f"built {', '.join(models)} in {time.perf_counter() - step:.0f} s", flush=True)
    for name, path in models.items():
        session = verify.make_session(path, threads)
        runners[name] = lambda x, s=session: verify.run_session(s, x)
    print(f"exported with the {exporter} exporter ({len(proto.graph.node)} nodes)")
    return runners


def measure(runners: dict[str, Runner], x: np.ndarray, repeats: int) -> dict[str, dict[str, float]]:
    outputs = {name: run(x) for name, run in runners.items()}  # warm-up, and the outputs for PSNR
    best = {name: float("inf") for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():  # interleaved: background load hits every variant alike
            start = time.perf_counter()
            run(x)
            best[name] = min(best[name], time.perf_counter() - start)
    reference = outputs["torch fp32"]
    return {
        name: {
            "ms": best[name] * 1000,
            "speedup_vs_torch_fp32": best["torch fp32"] / best[name],
            "psnr_db": verify.psnr(reference, outputs[name]),
        }
        for name in runners
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per variant and size (min is reported)")
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["fp16", "int8"],
        choices=["fp16", "int8", "bf16"],
        help="bf16 = torch autocast, opt-in: without AVX512-BF16/AMX it is >30x slower than fp32",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--fit-steps",
        type=int,
        default=0,
        help="brief fit before measuring (0: random init; each step takes ~5 s on 2 busy cores)",
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained .safetensors generator instead")
    parser.add_argument("--calibration-images", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    module, card, what = build_model(args.checkpoint, args.fit_steps, seed=0)
    rng = np.random.default_rng(1)
    calibration = np.stack([scene(rng, 256) for _ in range(args.calibration_images)])
    print(f"ResNet-9 ngf {card.ngf}, weights: {what}", flush=True)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads; "
        f"torch {torch.__version__}, onnxruntime {verify.ort.__version__}; load average {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cyclegan-bench-") as tmp:
        runners = build_runners(module, card, Path(tmp), args.threads, args.precisions, calibration)
        for side in args.sizes:
            x = scene(np.random.default_rng(side), side)[None]
            results[str(side)] = measure(runners, x, args.repeats)
            print(f"\n{side}x{side} px (best of {args.repeats}; load average {os.getloadavg()[0]:.1f})")
            print(f"  {'variant':<20} {'ms/image':>10} {'vs torch fp32':>14} {'PSNR vs fp32':>13}")
            for name, r in results[str(side)].items():
                psnr = "ref" if name == "torch fp32" else f"{r['psnr_db']:.1f} dB"
                print(f"  {name:<20} {r['ms']:>10.0f} {r['speedup_vs_torch_fp32']:>13.2f}x {psnr:>13}")
    if args.json:
        args.json.write_text(json.dumps({"weights": what, "threads": args.threads, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
