"""Large photos and stable video: seam-free tiles against whole-image and naive tiles, and video flicker.

    python benchmarks/large.py                        # everything (trains the demo model first if needed)
    python benchmarks/large.py --demo-model demo_out/models/tiny_cpu_A2B.onnx --r9-model models/r9_A2B.onnx
    python benchmarks/large.py --skip-24mp            # the 2048 px and video tables only

Tables (each figure measured in this run; variants interleaved, each in its own process for peak RSS):

1. 24 MP photo (6000x4000), ResNet-9 (64 filters, random weights: speed and memory only): peak RSS
   (``ru_maxrss`` of a fresh process that builds the photo, loads the model and stylizes), time of the
   stylize call, seam score; naive tiles (each window normalised with its own statistics, hard cuts) and
   seam-free tiles (the picture's statistics from a copy at ``--stats-side``, linear blends). Whole-image
   inference does not fit at this size.
2. 2048x2048: the same three, plus PSNR against whole-image inference, for ResNet-9 (time, memory) and the
   trained demo model (PSNR and seam score mean something only with trained weights).
3. Flicker on a generated clip (static camera: a photo with sensor noise, a moving disc):
   flicker = mean|S(t) - S(t-1)| / mean|I(t) - I(t-1)|, and per-frame PSNR of stable against frame-by-frame.

Seam score: mean |horizontal gradient| on the columns where neighbouring windows meet (the middle of their
overlap; rows likewise with the vertical gradient) divided by the mean everywhere else; 1.0 = no seam.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cyclegan.contract.tiles import DEFAULT_STATS_SIDE, DEFAULT_TILE, TileGeometry, geometry, windows  # noqa: E402

NAIVE_MARGIN = 48  # naive tiles: hard cuts in the middle of the overlap (ramp of 1 px)


# ----------------------------------------------------------------------------------------------- inputs
def _sample_photos() -> list[Image.Image]:
    import matplotlib.cbook
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket(), skimage.data.chelsea()]
    images = [Image.fromarray(p) for p in photos]
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        images.append(Image.open(f).convert("RGB"))
    return images


def photo(width: int, height: int) -> np.ndarray:
    """A deterministic 'photo': a mosaic of public-domain sample photos, each scaled to its cell (LANCZOS)."""
    images = _sample_photos()
    cols = max(1, round(width / 1024))
    rows = max(1, round(height / 1024))
    out = np.empty((height, width, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            y0, y1 = r * height // rows, (r + 1) * height // rows
            x0, x1 = c * width // cols, (c + 1) * width // cols
            image = images[(r * cols + c) % len(images)]
            out[y0:y1, x0:x1] = np.asarray(image.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS))
    return out


def naive_geometry(geo: TileGeometry) -> TileGeometry:
    return TileGeometry(tile=geo.tile, margin=NAIVE_MARGIN, ramp=1, multiple=geo.multiple)


# ----------------------------------------------------------------------------------------------- worker
def worker(args: argparse.Namespace) -> None:
    """One variant in this (fresh) process; prints a JSON line; writes the output as .npy."""
    from serve.stylizer import Stylizer
    from serve.tiles import Tiler

    width, height = map(int, args.size.split("x"))
    image = photo(width, height)
    stylizer = Stylizer(args.model, tile=args.tile, stats_side=args.stats_side, note=lambda _m: None)
    if args.worker != "whole":
        stylizer.companions  # noqa: B018 - load the companions before the clock starts
    started = time.perf_counter()
    if args.worker == "whole":
        out = stylizer._run_whole(image[None])[0]
    elif args.worker == "seamfree":
        out = stylizer.run_tiled(image)
    elif args.worker == "naive":
        assert stylizer.geometry is not None
        out = Tiler(stylizer.card, stylizer.session, naive_geometry(stylizer.geometry), False).run(image)
    else:
        raise SystemExit(f"unknown variant {args.worker}")
    seconds = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(args.out, out)
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb}))


def run_variant(variant: str, model: Path, size: str, tile: int, stats_side: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", variant, "--model", str(model), "--size", size]
    cmd += ["--tile", str(tile), "--stats-side", str(stats_side), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------- scores
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def border_lines(length: int, geo: TileGeometry, pad_before: int) -> list[int]:
    """Image coordinates where neighbouring windows meet (the middle of each overlap)."""
    spans = windows(length, geo)
    return [(b[0] + a[1]) // 2 - pad_before for a, b in zip(spans, spans[1:])]


def seam_score(out: np.ndarray, geo: TileGeometry) -> float:
    from cyclegan.contract.sizes import centred_padding

    img = out.astype(np.float32)
    h, w = img.shape[:2]
    gx = np.abs(np.diff(img, axis=1)).mean(axis=2)  # [h, w-1]: gx[:, x] between x and x+1
    gy = np.abs(np.diff(img, axis=0)).mean(axis=2)
    top, _ = centred_padding(h, geo.multiple)
    left, _ = centred_padding(w, geo.multiple)
    padded_h, padded_w = h + sum(centred_padding(h, geo.multiple)), w + sum(centred_padding(w, geo.multiple))
    xs = [x - 1 for x in border_lines(padded_w, geo, left) if 0 < x < w]
    ys = [y - 1 for y in border_lines(padded_h, geo, top) if 0 < y < h]
    mask_x = np.zeros(gx.shape[1], bool)
    mask_x[xs] = True
    mask_y = np.zeros(gy.shape[0], bool)
    mask_y[ys] = True
    at = np.concatenate([gx[:, mask_x].ravel(), gy[mask_y, :].ravel()])
    elsewhere = np.concatenate([gx[:, ~mask_x].ravel(), gy[~mask_y, :].ravel()])
    return float(at.mean() / elsewhere.mean()) if at.size else float("nan")


# ----------------------------------------------------------------------------------------------- tables
def photo_table(model: Path, size: str, tile: int, stats_side: int, variants: list[str], repeats: int) -> None:
    width, height = map(int, size.split("x"))
    geo = geometry(tile, 4)
    results: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {v: Path(tmp) / f"{v}.npy" for v in variants}
        for _ in range(repeats):  # interleaved
            for v in variants:
                results[v].append(run_variant(v, model, size, tile, stats_side, outs[v]))
        arrays = {v: np.load(outs[v]) for v in variants if outs[v].exists()}
    print(f"\n{model.name} at {width}x{height} ({width * height / 1e6:.1f} MP), tile {tile}, stats side {stats_side}")
    print("| variant | time (s) | peak RSS (MB) | seam score | PSNR vs whole (dB) |")
    print("| --- | --- | --- | --- | --- |")
    for v in variants:
        runs = results[v]
        if any("error" in r for r in runs):
            print(f"| {v} | failed: {next(r['error'] for r in runs if 'error' in r)} | | | |")
            continue
        seconds = " / ".join(f"{r['seconds']:.1f}" for r in runs)
        rss = max(r["rss_mb"] for r in runs)
        g = naive_geometry(geo) if v == "naive" else geo
        seam = seam_score(arrays[v], g) if v != "whole" else seam_score(arrays[v], geo)
        vs = f"{psnr(arrays[v], arrays['whole']):.1f}" if "whole" in arrays and v != "whole" else "-"
        print(f"| {v} | {seconds} | {rss:.0f} | {seam:.3f} | {vs} |")


def clip(width: int = 640, height: int = 360, frames: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Static camera: one photo plus sensor noise; a disc moves across; a cut to another photo at 2/3."""
    rng = np.random.default_rng(seed)
    images = _sample_photos()
    backgrounds = [np.asarray(images[i].resize((width, height), Image.Resampling.LANCZOS)) for i in (3, 2)]
    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for t in range(frames):
        shot = 0 if t < frames * 2 // 3 else 1
        frame = backgrounds[shot].astype(np.float32).copy()
        cx, cy = width * (0.15 + 0.7 * t / frames), height * 0.5
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (height * 0.18) ** 2
        frame[disc] = (230, 40, 40)
        frame += rng.normal(0, 2.0, frame.shape)
        out.append(frame.clip(0, 255).astype(np.uint8))
    return out


def flicker(styled: list[np.ndarray], inputs: list[np.ndarray], cuts: set[int]) -> float:
    num = [np.abs(styled[t].astype(np.float32) - styled[t - 1]).mean() for t in range(1, len(styled)) if t not in cuts]
    den = [np.abs(inputs[t].astype(np.float32) - inputs[t - 1]).mean() for t in range(1, len(inputs)) if t not in cuts]
    return float(np.mean(num) / np.mean(den))


def video_table(model: Path, decays: list[float], stats_sides: list[int]) -> None:
    from serve.stylizer import Stylizer
    from serve.tiles import StatsSmoother

    frames = clip()
    cut = len(frames) * 2 // 3
    stylizer = Stylizer(model, note=lambda _m: None)
    started = time.perf_counter()
    plain = [stylizer.run_array(f[None])[0] for f in frames]
    plain_s = (time.perf_counter() - started) / len(frames)
    base = flicker(plain, frames, {cut})
    h, w = frames[0].shape[:2]
    print(f"\nflicker, {model.name}, {len(frames)} frames {w}x{h}, static camera + moving disc, a cut at frame {cut}")
    print("| mode | flicker | vs frame-by-frame | per-frame PSNR vs frame-by-frame (mean / min, dB) | cuts found | s/frame |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| frame by frame | {base:.3f} | 1.00x | - | - | {plain_s:.3f} |")
    for side in stats_sides:
        for decay in decays:
            smoother = StatsSmoother(decay=decay)
            started = time.perf_counter()
            styled = [stylizer.run_with_stats(f, smoother.update(f, stylizer.picture_stats(f, side))) for f in frames]
            seconds = (time.perf_counter() - started) / len(frames)
            value = flicker(styled, frames, {cut})
            scores = [psnr(a, b) for a, b in zip(styled, plain)]
            print(
                f"| stable, decay {decay}, stats side {side} | {value:.3f} | {value / base:.2f}x | "
                f"{np.mean(scores):.1f} / {np.min(scores):.1f} | {smoother.cuts} | {seconds:.3f} |"
            )


# ----------------------------------------------------------------------------------------------- models
def r9_model(folder: Path) -> Path:
    """ResNet-9, 64 filters, seeded random weights, exported with its companions."""
    path = folder / "models" / "r9_A2B.onnx"
    if path.is_file():
        return path
    import torch

    from cyclegan.contract.card import GeneratorCard
    from cyclegan.generator_io import save_generator
    from cyclegan.models.factory import generator_from_card
    from export.pipeline import ExportOptions, export_generator

    torch.manual_seed(0)
    card = GeneratorCard(generator="resnet_9blocks", ngf=64, norm="instance", run_name="r9")
    save_generator(folder / "r9.safetensors", generator_from_card(card), card)
    export_generator(folder / "r9.safetensors", folder / "models", ExportOptions(bench_side=0))
    return path


def demo_model(folder: Path) -> Path:
    path = folder / "demo" / "models" / "tiny_cpu_A2B.onnx"
    if not path.is_file():
        subprocess.run([sys.executable, "-m", "cyclegan.demo", "--out", str(folder / "demo")], check=True, cwd=ROOT)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", default="2048x2048", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    parser.add_argument("--stats-side", type=int, default=DEFAULT_STATS_SIDE)
    parser.add_argument("--work", type=Path, default=ROOT / "bench_large", help="models are built/trained here")
    parser.add_argument("--demo-model", type=Path, help="a trained demo model (default: train one in --work)")
    parser.add_argument("--r9-model", type=Path, help="ResNet-9 with companions (default: export one in --work)")
    parser.add_argument("--skip-24mp", action="store_true")
    parser.add_argument("--only", choices=["24mp", "2048", "video"], help="one table only")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu} ({os.cpu_count()} cores), {platform.python_version()}, load average {os.getloadavg()}")
    args.work.mkdir(parents=True, exist_ok=True)
    r9 = args.r9_model or r9_model(args.work)
    demo = args.demo_model or demo_model(args.work)
    if args.only in (None, "2048"):
        for model in (demo, r9):
            photo_table(model, "2048x2048", args.tile, args.stats_side, ["whole", "naive", "seamfree"], args.repeats)
    if args.only in (None, "video"):
        video_table(demo, [0.8, 0.9, 0.95], [256, 512])
    if args.only in (None, "24mp") and not args.skip_24mp:
        photo_table(r9, "6000x4000", args.tile, args.stats_side, ["naive", "seamfree"], 1)
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
