"""Large photos and stable video: seam-free tiles against whole-image and naive tiles, and video flicker.

    python benchmarks/large.py                        # everything (trains the demo model first if needed)
    python benchmarks/large.py --demo-model demo_out/models/tiny_cpu_A2B.onnx --r9-model models/r9_A2B.onnx
    python benchmarks/large.py --skip-24mp            # the 2048 px and video tables only
    python benchmarks/large.py --only 24mp --variants seamfree   # one table, one variant

Tables (each figure measured in this run; variants interleaved, each in its own process for peak RSS):

1. 24 MP photo (6000x4000), ResNet-9 (64 filters, random weights: speed and memory only): peak RSS
   (``VmHWM`` of a fresh process that builds the photo, loads the model and stylizes), time of the
   stylize call, seam score; naive tiles (each window normalised with its own statistics, hard cuts) and
   seam-free tiles (the picture's statistics from a copy at ``--stats-side``, linear blends). Whole-image
   inference does not fit at this size.
2. 2048x2048: the same three, plus PSNR against whole-image inference, for ResNet-9 (time, memory) and the
   trained demo model (PSNR and seam score mean something only with trained weights).
3. Flicker on a generated clip (static camera: a photo with sensor noise, a moving disc):
   flicker = mean|S(t) - S(t-1)| / mean|I(t) - I(t-1)|, and per-frame PSNR against frame-by-frame, for
   frame by frame, the temporal stabiliser (``--stable``), shared statistics, and both.

Seam score: mean |horizontal gradient| on the columns where neighbouring windows meet (the middle of their
overlap; rows likewise with the vertical gradient) divided by the mean on the columns (rows) 2-8 px beside
them, so that the picture's own content cancels out; 1.0 = no seam. Lines within 16 px of the mosaic's own
cell edges are left out (2048x2048 in 2x3 windows: the row border falls on the photo's edge at 1024). The
whole-image row gives the score of the same lines without any tiles (the noise floor).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cyclegan.contract.runtime import cpu_model, peak_rss_mib  # noqa: E402
from cyclegan.contract.tiles import DEFAULT_STATS_SIDE, TileGeometry, geometry, grid  # noqa: E402


# ----------------------------------------------------------------------------------------------- inputs
def _sample_photos() -> list[Image.Image]:
    import matplotlib.cbook
    import skimage.data

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket(), skimage.data.chelsea()]
    images = [Image.fromarray(p) for p in photos]
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        images.append(Image.open(f).convert("RGB"))
    return images


def cells(length: int) -> int:
    """Mosaic cells of :func:`photo` along a side of ``length`` pixels."""
    return max(1, round(length / CELL))


def cell_edges(length: int) -> list[int]:
    """Where the mosaic's cells meet along a side (the photo's own edges)."""
    n = cells(length)
    return [k * length // n for k in range(1, n)]


CELL = 1024  # the mosaic's cell side


def photo(width: int, height: int) -> np.ndarray:
    """A deterministic 'photo': a mosaic of public-domain sample photos, each scaled to its cell (LANCZOS)."""
    images = _sample_photos()
    cols, rows = cells(width), cells(height)
    out = np.empty((height, width, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            y0, y1 = r * height // rows, (r + 1) * height // rows
            x0, x1 = c * width // cols, (c + 1) * width // cols
            image = images[(r * cols + c) % len(images)]
            out[y0:y1, x0:x1] = np.asarray(image.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS))
    return out


def naive_tiles(stylizer, image: np.ndarray) -> np.ndarray:  # noqa: ANN001 - serve.stylizer.Stylizer
    """The baseline: the same windows, each run by the plain model (its own statistics), hard cuts in the
    middle of each overlap (what tiling without shared statistics gives)."""
    from cyclegan.contract import pixels, sizes
    from cyclegan.contract.runtime import INPUT_NAME, OUTPUT_NAME

    card, geo = stylizer.card, stylizer.geometry
    h, w = image.shape[:2]
    padded, (top, left) = sizes.pad_centred(image.transpose(2, 0, 1), card.size_multiple, card.min_side)
    out = np.empty((h, w, 3), np.uint8)
    spans = grid(*padded.shape[1:], geo)
    cuts = [[0] + [(b[0] + a[1]) // 2 for a, b in zip(s, s[1:])] + [n] for s, n in zip(spans, padded.shape[1:])]
    for i, (y0, y1) in enumerate(spans[0]):
        for j, (x0, x1) in enumerate(spans[1]):
            tile = np.ascontiguousarray(padded[None, :, y0:y1, x0:x1].transpose(0, 2, 3, 1))
            y = stylizer.session.run([OUTPUT_NAME], {INPUT_NAME: pixels.to_model(tile, card.mean, card.std)})[0]
            styled = pixels.from_model(y, card.mean, card.std)[0]
            cy0, cy1 = max(cuts[0][i], top), min(cuts[0][i + 1], top + h)
            cx0, cx1 = max(cuts[1][j], left), min(cuts[1][j + 1], left + w)
            if cy0 < cy1 and cx0 < cx1:
                out[cy0 - top : cy1 - top, cx0 - left : cx1 - left] = styled[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return out


# ----------------------------------------------------------------------------------------------- worker
def worker(args: argparse.Namespace) -> None:
    """One variant in this (fresh) process; prints a JSON line; writes the output as .npy."""
    from serve.stylizer import Stylizer

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
        out = naive_tiles(stylizer, image)
    else:
        raise SystemExit(f"unknown variant {args.worker}")
    seconds = time.perf_counter() - started
    rss_mb = peak_rss_mib()
    np.save(args.out, out)
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb}))


def run_variant(variant: str, model: Path, size: str, tile: int | None, stats_side: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", variant, "--model", str(model), "--size", size]
    cmd += ["--tile", str(tile)] if tile is not None else []
    cmd += ["--stats-side", str(stats_side), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------- scores
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def border_lines(spans: list[tuple[int, int]], pad_before: int) -> list[int]:
    """Image coordinates where neighbouring windows meet (the middle of each overlap)."""
    return [(b[0] + a[1]) // 2 - pad_before for a, b in zip(spans, spans[1:])]


def seam_score(out: np.ndarray, geo: TileGeometry) -> float:
    """Mean gradient magnitude across the tile borders / mean gradient 2-8 px beside them (same content)."""
    from cyclegan.contract.sizes import centred_padding

    img = out.astype(np.float32)
    h, w = img.shape[:2]
    gx = np.abs(np.diff(img, axis=1)).mean(axis=2)  # [h, w-1]: gx[:, x] between x and x+1
    gy = np.abs(np.diff(img, axis=0)).mean(axis=2)
    top, bottom = centred_padding(h, geo.multiple)
    left, right = centred_padding(w, geo.multiple)
    rows, cols = grid(h + top + bottom, w + left + right, geo)
    xs = [x - 1 for x in border_lines(cols, left) if NEAR < x < w - NEAR and _inside_cell(x, w)]
    ys = [y - 1 for y in border_lines(rows, top) if NEAR < y < h - NEAR and _inside_cell(y, h)]
    at = [gx[:, x].mean() for x in xs] + [gy[y, :].mean() for y in ys]
    beside = [gx[:, x + d].mean() for x in xs for d in OFFSETS] + [gy[y + d, :].mean() for y in ys for d in OFFSETS]
    return float(np.mean(at) / np.mean(beside)) if at else float("nan")


def _inside_cell(line: int, length: int) -> bool:
    """Is this line away from the photo's own cell edges (a border there would measure the edge, not a seam)?"""
    return all(abs(line - edge) > 2 * NEAR for edge in cell_edges(length))


NEAR = 8
OFFSETS = [d for k in range(2, NEAR + 1) for d in (-k, k)]


# ----------------------------------------------------------------------------------------------- tables
def photo_table(model: Path, size: str, tile: int | None, stats_side: int, variants: list[str], repeats: int) -> None:
    width, height = map(int, size.split("x"))
    geo = geometry(tile, 4)
    results: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        outs = {v: Path(tmp) / f"{v}.npy" for v in variants}
        for _ in range(repeats):  # interleaved
            for v in variants:
                results[v].append(run_variant(v, model, size, tile, stats_side, outs[v]))
        arrays = {v: np.load(outs[v]) for v in variants if outs[v].exists()}
    where = f"{width}x{height} ({width * height / 1e6:.1f} MP), tile {tile or 'default'}, stats side {stats_side}"
    print(f"\n{model.name} at {where}")
    print("| variant | time (s) | peak RSS (MB) | seam score | PSNR vs whole (dB) |")
    print("| --- | --- | --- | --- | --- |")
    for v in variants:
        runs = results[v]
        if any("error" in r for r in runs):
            print(f"| {v} | failed: {next(r['error'] for r in runs if 'error' in r)} | | | |")
            continue
        seconds = " / ".join(f"{r['seconds']:.1f}" for r in runs)
        rss = max(r["rss_mb"] for r in runs)
        seam = seam_score(arrays[v], geo)
        vs = f"{psnr(arrays[v], arrays['whole']):.1f}" if "whole" in arrays and v != "whole" else "-"
        print(f"| {v} | {seconds} | {rss:.0f} | {seam:.3f} | {vs} |")


def clip(noise: float, width: int = 640, height: int = 360, frames: int = 48, seed: int = 0) -> list[np.ndarray]:
    """Static camera: one photo (plus Gaussian sensor noise of ``noise`` levels); a disc moves across; a cut
    to another photo at 2/3."""
    rng = np.random.default_rng(seed)
    images = _sample_photos()
    backgrounds = [np.asarray(images[i].resize((width, height), Image.Resampling.LANCZOS)) for i in (3, 2)]
    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for t in range(frames):
        shot = 0 if t < frames * 2 // 3 else 1
        frame = backgrounds[shot].astype(np.float32)
        cx, cy = width * (0.15 + 0.7 * t / frames), height * 0.5
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 < (height * 0.18) ** 2] = (230, 40, 40)
        if noise:
            frame += rng.normal(0, noise, frame.shape)
        out.append(frame.clip(0, 255).astype(np.uint8))
    return out


def flicker(styled: list[np.ndarray], inputs: list[np.ndarray], cuts: set[int]) -> float:
    num = [np.abs(styled[t].astype(np.float32) - styled[t - 1]).mean() for t in range(1, len(styled)) if t not in cuts]
    den = [np.abs(inputs[t].astype(np.float32) - inputs[t - 1]).mean() for t in range(1, len(inputs)) if t not in cuts]
    return float(np.mean(num) / np.mean(den))


def flicker_row(
    name: str, styled: list, frames: list, plain: list, cut: int, base: float, cuts: int, seconds: float
) -> str:
    value = flicker(styled, frames, {cut})
    scores = [psnr(a, b) for a, b in zip(styled, plain)]
    mean, low = np.mean(scores), np.min(scores)
    return f"| {name} | {value:.3f} | {value / base:.2f}x | {mean:.1f} / {low:.1f} | {cuts} | {seconds:.3f} |"


def video_table(model: Path, settings: list[tuple[float, int, int | None]]) -> None:
    """Frame by frame; shared statistics (settings: (decay, every, stats side or None for the frame's own
    size)), the baseline of the earlier stable mode; the temporal stabiliser (``--stable``), alone and on top
    of shared statistics. Every row of a clip from the same run, frame by frame first."""
    from serve.stylizer import Stylizer
    from serve.temporal import TemporalStabiliser
    from serve.tiles import StatsSmoother

    stylizer = Stylizer(model, note=lambda _m: None)
    for noise in (0.0, 2.0):
        frames = clip(noise)
        cut = len(frames) * 2 // 3
        started = time.perf_counter()
        plain = [stylizer.run_array(f[None])[0] for f in frames]
        plain_s = (time.perf_counter() - started) / len(frames)
        base = flicker(plain, frames, {cut})
        h, w = frames[0].shape[:2]
        what = f"{len(frames)} frames {w}x{h}, static camera + moving disc, noise sigma {noise}, a cut at frame {cut}"
        print(f"\nflicker, {model.name}, {what}")
        print("| mode | flicker | vs frame by frame | PSNR vs frame by frame, mean / min (dB) | cuts | s/frame |")
        print("| --- | --- | --- | --- | --- | --- |")
        print(f"| frame by frame | {base:.3f} | 1.00x | - | - | {plain_s:.3f} |")

        def row(
            name: str, styled: list[np.ndarray], cuts: int, seconds: float, ref: tuple = (frames, plain, cut, base)
        ) -> None:
            print(flicker_row(name, styled, *ref, cuts, seconds))

        stabiliser = TemporalStabiliser()
        started = time.perf_counter()
        stable = [stabiliser(f, s) for f, s in zip(frames, plain)]
        extra = (time.perf_counter() - started) / len(frames)
        row("`--stable`: temporal stabiliser", stable, stabiliser.cuts, plain_s + extra)
        for decay, every, side in settings:
            smoother = StatsSmoother(decay=decay, every=every)
            started = time.perf_counter()
            stats_side = side or max(h, w)

            def stats_of(frame: np.ndarray, stats_side: int = stats_side) -> np.ndarray:
                return stylizer.picture_stats(frame, stats_side)

            shared = [stylizer.run_with_stats(f, smoother.stats_for(f, stats_of)) for f in frames]
            seconds = (time.perf_counter() - started) / len(frames)
            name = f"shared statistics, decay {decay}, every {every} frames at {side or 'full'} px"
            row(name, shared, smoother.cuts, seconds)
            stabiliser = TemporalStabiliser()
            started = time.perf_counter()
            both = [stabiliser(f, s) for f, s in zip(frames, shared)]
            row(name + " + stabiliser", both, stabiliser.cuts, seconds + (time.perf_counter() - started) / len(frames))


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
    parser.add_argument("--tile", type=int, help="tile side (default: the serving default, see serve.stylizer)")
    parser.add_argument("--stats-side", type=int, default=DEFAULT_STATS_SIDE)
    parser.add_argument("--work", type=Path, default=ROOT / "bench_large", help="models are built/trained here")
    parser.add_argument("--demo-model", type=Path, help="a trained demo model (default: train one in --work)")
    parser.add_argument("--r9-model", type=Path, help="ResNet-9 with companions (default: export one in --work)")
    parser.add_argument("--skip-24mp", action="store_true")
    parser.add_argument("--only", choices=["24mp", "2048", "video"], help="one table only")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--variants", default="whole,naive,seamfree", help="photo variants to run (24 MP: whole never fits)"
    )
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores), {platform.python_version()}, load average {os.getloadavg()}")
    args.work.mkdir(parents=True, exist_ok=True)
    r9 = args.r9_model or r9_model(args.work)
    demo = args.demo_model or demo_model(args.work)
    variants = args.variants.split(",")
    if args.only in (None, "2048"):
        for model in (demo, r9):
            photo_table(model, "2048x2048", args.tile, args.stats_side, variants, args.repeats)
    if args.only in (None, "video"):
        video_table(demo, [(0.9, 4, None)])
    if args.only in (None, "24mp") and not args.skip_24mp:
        photo_table(r9, "6000x4000", args.tile, args.stats_side, [v for v in variants if v != "whole"], 1)
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
