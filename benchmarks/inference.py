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
``--checkpoint G.safetensors`` benchmarks a real trained generator; with ``--calibration-dir`` (the
training domain's images) the int8 model is built as ``cyclegan export`` builds it: the recipe ladder,
the first recipe reaching ``--int8-min-psnr`` on held-out images (``export.quantize.choose_int8``), and
``--eval-dir`` (held-out photos) replaces the synthetic scenes as the measured inputs (square crops).
``--bot`` adds the bot's throughput (images per minute: ``BOT_WORKERS`` = 2 jobs at once, each with
its share of the CPUs, 1024 px longest side, through :class:`serve.stylizer.Stylizer`) for fp32 and
int8, and the first-request latency of a fresh process (import, model load, first 1024 px photo).

    python benchmarks/inference.py                       # 256/512/1024 px: ~5 min on 2 idle cores, ~8 busy
    python benchmarks/inference.py --sizes 256 512 --repeats 5 --json out.json
    python benchmarks/inference.py --checkpoint runs/r9/generators/A2B.safetensors \
        --calibration-dir datasets/p2c/trainA --eval-dir datasets/p2c/testA --bot
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# torch's OpenMP threads sleep at barriers instead of spinning (as training sets it): on a shared machine a
# spinning torch fp32 baseline would be slowed by other jobs far more than onnxruntime, flattering int8.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cyclegan.contract import pixels  # noqa: E402
from cyclegan.contract.card import GeneratorCard  # noqa: E402
from cyclegan.contract.images import list_images, open_image  # noqa: E402
from cyclegan.contract.runtime import cpu_model  # noqa: E402
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
    calibration: list[np.ndarray],
    held_out: list[np.ndarray],
    min_psnr: float,
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
        chosen, tried = quantize.choose_int8(
            fp32_path, calibration, lambda m: _psnr_against(fp32_path, m, held_out), min_psnr, echo=print
        )
        first = tried[0]
        if first is not chosen:  # the fastest recipe too, to show what the ladder buys
            models[f"ort int8 {first.recipe.name}"] = tmp / "int8-first.onnx"
            onnx.save_model(first.model, str(models[f"ort int8 {first.recipe.name}"]))
        models[f"ort int8 {chosen.recipe.name}"] = tmp / "int8.onnx"
        onnx.save_model(chosen.model, str(models[f"ort int8 {chosen.recipe.name}"]))
        for trial in {id(t): t for t in (first, chosen)}.values():
            print(
                f"int8 recipe {trial.recipe.name}: held-out PSNR {trial.psnr_db:.1f} dB, convolutions kept in float: "
                f"{', '.join(trial.float_convs) or 'none'}"
            )
        print(f"chosen (floor {min_psnr:g} dB): {chosen.recipe.name}")
    print(f"built {', '.join(models)} in {time.perf_counter() - step:.0f} s", flush=True)
    for name, path in models.items():
        session = verify.make_session(path, threads)
        runners[name] = lambda x, s=session: verify.run_session(s, x)
    print(f"exported with the {exporter} exporter ({len(proto.graph.node)} nodes)")
    return runners


def _psnr_against(fp32_path: Path, model: onnx.ModelProto, inputs: list[np.ndarray]) -> float:
    reference, test = verify.make_session(fp32_path), verify.make_session_from(model)
    return verify.psnr_over(
        [verify.run_session(reference, x) for x in inputs], [verify.run_session(test, x) for x in inputs]
    )


def square_photo(path: Path, side: int, card: GeneratorCard) -> np.ndarray:
    """A photo as serving feeds it (contract open + pixels), centre-cropped to a square ``side`` px."""
    from PIL import ImageOps

    image = ImageOps.fit(open_image(path).convert("RGB"), (side, side))
    return pixels.to_model(np.asarray(image)[None], card.mean, card.std)[0]


def bot_throughput(models: dict[str, Path], photos: list[Path], workers: int, side: int, count: int) -> dict:
    """Images per minute through :class:`Stylizer` with ``workers`` jobs at once (the bot's InferencePool)."""
    from cyclegan.contract.runtime import available_cpus
    from serve.stylizer import Stylizer

    threads = max(1, available_cpus() // workers)
    images = [open_image(photos[i % len(photos)]).convert("RGB").resize((side, side * 3 // 4)) for i in range(count)]
    results = {}
    for name, path in models.items():
        stylizer = Stylizer(path, threads=threads, max_side=side)
        stylizer.stylize(images[0])  # warm-up
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(stylizer.stylize, images))
        seconds = time.perf_counter() - start
        results[name] = {"images_per_minute": count * 60 / seconds, "seconds": seconds, "threads_per_worker": threads}
    return results


FIRST_REQUEST = """
import sys, time
start = time.perf_counter()
from PIL import Image
from serve.stylizer import Stylizer
imported = time.perf_counter()
stylizer = Stylizer(sys.argv[1], threads=int(sys.argv[3]), max_side=int(sys.argv[2]))
loaded = time.perf_counter()
stylizer.stylize(Image.new("RGB", (int(sys.argv[2]), int(sys.argv[2]) * 3 // 4), (120, 140, 90)))
done = time.perf_counter()
print(imported - start, loaded - imported, done - loaded, done - start)
"""


def first_request(path: Path, side: int, threads: int) -> dict[str, float]:
    """A fresh process: import serving, load the model, answer one photo (what a restarted bot's first user waits)."""
    out = subprocess.run(
        [sys.executable, "-c", FIRST_REQUEST, str(path), str(side), str(threads)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.split()
    imported, loaded, first, total = map(float, out[-4:])
    return {"import_s": imported, "load_s": loaded, "first_image_s": first, "total_s": total}


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
    parser.add_argument("--calibration-dir", type=Path, default=None, help="training-domain images for int8")
    parser.add_argument("--eval-dir", type=Path, default=None, help="held-out photos: the measured inputs")
    parser.add_argument("--int8-min-psnr", type=float, default=30.0)
    parser.add_argument("--bot", action="store_true", help="also the bot's images/minute and first-request latency")
    parser.add_argument("--bot-images", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    module, card, what = build_model(args.checkpoint, args.fit_steps, seed=0)
    rng = np.random.default_rng(1)
    if args.calibration_dir is not None:
        files, held = quantize.split_held_out(
            quantize.list_calibration_images(args.calibration_dir, None), args.calibration_images, 4
        )
        calibration, held_out = (
            quantize.load_calibration_inputs(files, card),
            quantize.load_calibration_inputs(held, card),
        )
    else:
        calibration = [scene(rng, 256)[None] for _ in range(args.calibration_images)]
        held_out = [scene(rng, 256)[None] for _ in range(2)]
    photos = list_images(args.eval_dir) if args.eval_dir else []
    print(f"{card.architecture}, weights: {what}", flush=True)
    print(
        f"machine: {cpu_model()} (VNNI: {quantize.cpu_has_vnni()}), {os.cpu_count()} CPUs, "
        f"{args.threads} threads; "
        f"torch {torch.__version__}, onnxruntime {verify.ort.__version__}; OMP_WAIT_POLICY "
        f"{os.environ.get('OMP_WAIT_POLICY')}; load average {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cyclegan-bench-") as tmp:
        runners = build_runners(
            module, card, Path(tmp), args.threads, args.precisions, calibration, held_out, args.int8_min_psnr
        )
        for side in args.sizes:
            if photos:
                x = np.concatenate([square_photo(p, side, card)[None] for p in photos[:1]])
            else:
                x = scene(np.random.default_rng(side), side)[None]
            results[str(side)] = measure(runners, x, args.repeats)
            print(f"\n{side}x{side} px (best of {args.repeats}; load average {os.getloadavg()[0]:.1f})")
            print(f"  {'variant':<20} {'ms/image':>10} {'vs torch fp32':>14} {'PSNR vs fp32':>13}")
            for name, r in results[str(side)].items():
                psnr = "ref" if name == "torch fp32" else f"{r['psnr_db']:.1f} dB"
                print(f"  {name:<20} {r['ms']:>10.0f} {r['speedup_vs_torch_fp32']:>13.2f}x {psnr:>13}")
        if args.bot:
            bot = {}
            onnx_models = {"ort fp32": Path(tmp) / "fp32.onnx"}
            if (Path(tmp) / "int8.onnx").exists():
                onnx_models["ort int8"] = Path(tmp) / "int8.onnx"
            for name, path in onnx_models.items():  # the card the export writes, so Stylizer loads them
                model = onnx.load(str(path))
                onnx_export.attach_card(model, dataclasses.replace(card, precision=name.split()[-1][:4]))
                onnx.save_model(model, str(path))
            photos_or_scene = photos or [None]
            if photos_or_scene == [None]:
                from PIL import Image

                Image.fromarray(((scene(rng, 768).transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)).save(
                    Path(tmp) / "scene.png"
                )
                photos_or_scene = [Path(tmp) / "scene.png"]
            bot["throughput"] = bot_throughput(onnx_models, photos_or_scene, 2, 1024, args.bot_images)
            bot["first_request"] = {
                name: first_request(path, 1024, os.cpu_count() or 1) for name, path in onnx_models.items()
            }
            results["bot"] = bot
            print(
                f"\nbot settings: 2 workers x {bot['throughput']['ort fp32']['threads_per_worker']} thread(s), "
                f"1024 px longest side, {args.bot_images} photos (load average {os.getloadavg()[0]:.1f})"
            )
            base = bot["throughput"]["ort fp32"]["images_per_minute"]
            for name, r in bot["throughput"].items():
                f = bot["first_request"][name]
                print(
                    f"  {name:<10} {r['images_per_minute']:6.1f} images/min "
                    f"({r['images_per_minute'] / base:.2f}x fp32); "
                    f"first request in a fresh process {f['total_s']:.2f} s (import {f['import_s']:.2f} s, "
                    f"model load {f['load_s']:.2f} s, first 1024 px photo {f['first_image_s']:.2f} s)"
                )
    if args.json:
        args.json.write_text(json.dumps({"weights": what, "threads": args.threads, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
