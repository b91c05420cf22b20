"""``make demo``: the whole toolkit on an embedded default, from a video to stylized photos.

Stages (each one is the real CLI of that stage, run as a subprocess, timed):

1. assets  -- render the cartoon video, collect the shipped photos (``cyclegan.demo_assets``)
2. dataset -- ``cyclegan frames`` (domain B, cartoon) and ``cyclegan images`` (domain A, photos)
3. train   -- ``accelerate launch train_accel.py --config configs/tiny_cpu.yaml ...``
4. export  -- ``cyclegan export`` (ONNX, verified against PyTorch); the int8 variant only if it keeps the
   picture (PSNR against fp32 at or above the export's floor)
5. stylize -- ``python -m serve stylize`` on the held-out photos and a clip (torch-free)
6. report  -- contact sheet, loss curves, ``summary.txt`` with every stage's time

Re-running resumes: assets and dataset are reused, training continues from the last checkpoint
(up to ``--steps``), export and stylization are redone. ``--clean`` starts from nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from cyclegan.contract.errors import EXIT_FAILED, ToolkitError, reports_errors

REPO_ROOT = Path(__file__).resolve().parent.parent


# The demo's recipe, on top of tiny_cpu.yaml (README, "Style quality at small budgets"; chosen on the demo's own
# contact sheet and its flatness and colour-shift scores, with benchmarks/quality.py's paired scores beside them):
# resize upsampling (no checkerboard); an edge-preserving bilateral skip that carries the photo's colours in flat
# areas; a network that may change the lightness only (the photo's hues stay: no cartoon palette), judged by the
# 70x70 PatchGAN without norm on the whole picture (a judge of the luminance alone scored less flat, with more
# colour shift, on two seeds), with translation DiffAugment; exported weights averaged; a price on the total
# variation of the network's change (few strong edges on flat areas instead of a dense texture); the cartoon's
# 4:3 frames cropped, not squeezed into squares; the skip's lightness in 8 soft tones (cel shading: crisp tone
# boundaries, which the network outlines).
# The exported photo -> cartoon model draws dark outlines (`cyclegan export --outlines`, sigma in px) where the
# colours change: a filter, not learnt (README, "Flat tones and outlines"); 1.5 px gives lines about as bold as the
# cartoon's.
OUTLINES = 1.5
RECIPE = [
    "model.upsample=resize",
    "model.global_skip=true",
    "model.skip_blur=3",
    "model.skip_filter=bilateral",
    "model.skip_change=luminance",
    "model.skip_levels=8",
    "model.norm_d=none",
    "train.diffaugment=translation",
    "train.ema_decay=0.995",
    "loss.lambda_change_tv=1",
    "data.preprocess=scale_shorter_side_and_crop",
]


@dataclass
class DemoPlan:
    """Sizes of one demo run; ``small()`` is what the end-to-end test uses."""

    out: Path
    steps: int = 1200
    crop: int = 64
    load: int = 72
    frame_every: float = 0.2
    crops_per_photo: int = 60
    test_side: int = 256
    cartoon_scene_seconds: float = 6.0
    clip_seconds: float = 3.0
    save_every: int = 400
    log_every: int = 20
    sample_every: int = 400
    int8_min_psnr: float | None = None  # the int8 model's PSNR floor (None: the export's own default)
    # The demo is the machine's only job: batches are loaded in the training process and every CPU computes
    # (README, "Measured": 0.73-0.87x the time of the trainer's default, 1 thread beside 1 loader worker on 2 CPUs).
    loader_workers: int = 0
    # The TorchScript exporter: for this network the same onnxruntime output (max difference 0.0) at the same speed,
    # exported in seconds where the dynamo exporter takes tens (README, "Measured").
    exporter: str = "torchscript"
    extra_overrides: list[str] = field(default_factory=lambda: list(RECIPE))

    @classmethod
    def small(cls, out: Path) -> DemoPlan:
        return cls(
            out=out,
            steps=12,
            crop=32,
            load=36,
            frame_every=0.5,
            crops_per_photo=6,
            test_side=96,
            cartoon_scene_seconds=2.0,
            clip_seconds=1.0,
            save_every=6,
            log_every=2,
            sample_every=6,
            extra_overrides=[*RECIPE, "model.ngf=8", "model.ndf=8"],
        )

    @property
    def assets(self) -> Path:
        return self.out / "assets"

    @property
    def dataset(self) -> Path:
        return self.out / "dataset"

    @property
    def run(self) -> Path:
        return self.out / "run"

    @property
    def models(self) -> Path:
        return self.out / "models"

    @property
    def eval_json(self) -> Path:
        return self.out / "eval.json"

    @property
    def stylized(self) -> Path:
        return self.out / "stylized"


class StageFailed(ToolkitError):
    """A stage of the demo failed; its own output above says why."""

    exit_code = EXIT_FAILED


class StageClock:
    """Times named stages and prints a header for each."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        click.secho(f"\n==> {name}", bold=True)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            click.echo(f"    {name}: {self.seconds[name]:.1f} s")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _run(args: list[str], *, cwd: Path = REPO_ROOT) -> None:
    click.echo("    $ " + " ".join(str(a) for a in args))
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=_env())
    if result.returncode != 0:
        raise StageFailed(f"command failed with exit code {result.returncode}: {' '.join(map(str, args))}")


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "cyclegan", *map(str, args)]


# --------------------------------------------------------------------------- stages


def make_assets(plan: DemoPlan) -> None:
    from cyclegan import demo_assets as assets

    cartoon = plan.assets / "cartoon.mp4"
    if not cartoon.exists():
        spec = assets.CartoonSpec(scene_seconds=plan.cartoon_scene_seconds)
        assets.make_cartoon(cartoon, spec)
    photos_train, photos_test = plan.assets / "photos" / "train", plan.assets / "photos" / "test"
    if not photos_test.exists():
        assets.make_photos(
            photos_train,
            photos_test,
            crops_per_photo=plan.crops_per_photo,
            crop_size=plan.load + plan.load // 3,
            test_side=plan.test_side,
        )
    clip = plan.assets / "clip.mp4"
    if not clip.exists():
        assets.make_photo_clip(sorted(photos_test.glob("*.jpg"))[0], clip, seconds=plan.clip_seconds)
    click.echo(
        f"    cartoon: {cartoon}\n"
        f"    photos:  {photos_train} (train crops), {photos_test} (held out)\n"
        f"    clip:    {clip}"
    )


def build_dataset(plan: DemoPlan) -> None:
    _run(
        _cli(
            "frames",
            plan.assets / "cartoon.mp4",
            "--out",
            plan.dataset,
            "--domain",
            "B",
            "--name",
            "cartoon",
            "--every-seconds",
            plan.frame_every,
            "--resize",
            plan.load,
            "--test-ratio",
            0.1,
        )
    )
    _run(
        _cli(
            "images",
            plan.assets / "photos" / "train",
            "--out",
            plan.dataset,
            "--domain",
            "A",
            "--name",
            "photo",
            "--resize",
            plan.load,
            "--test-ratio",
            0.1,
        )
    )


def schedule_overrides(plan: DemoPlan) -> list[str]:
    """Epochs that make the paper's schedule (constant, then linear decay) end at ``plan.steps``.

    An epoch is one pass over the larger domain (batch 1), so the epoch count follows the dataset.
    """
    from cyclegan.contract.images import list_images

    per_epoch = max(len(list_images(plan.dataset / "trainA")), len(list_images(plan.dataset / "trainB")), 1)
    total = max(2, -(-plan.steps // per_epoch))
    return [f"optim.n_epochs={total // 2}", f"optim.n_epochs_decay={total - total // 2}"]


def train(plan: DemoPlan, resume: bool) -> None:
    overrides = [
        *schedule_overrides(plan),
        f"data.root={plan.dataset}",
        f"train.output_dir={plan.run}",
        f"train.max_steps={plan.steps}",
        f"data.crop_size={plan.crop}",
        f"data.load_size={plan.load}",
        f"data.num_workers={plan.loader_workers}",
        f"train.save_every={plan.save_every}",
        f"train.log_every={plan.log_every}",
        f"train.sample_every={plan.sample_every}",
        *plan.extra_overrides,
    ]
    args = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--cpu",
        str(REPO_ROOT / "train_accel.py"),
        "--config",
        str(REPO_ROOT / "configs" / "tiny_cpu.yaml"),
    ]
    if resume and (plan.run / "checkpoints").exists():
        args += ["--resume", "latest"]
    _run(args + overrides)


def export(plan: DemoPlan) -> None:
    if plan.models.exists():
        shutil.rmtree(plan.models)
    _run(_export_args(plan, "B2A"))
    if not export_a2b_with_int8(plan):
        _run(_export_args(plan, "A2B"))


def _export_args(plan: DemoPlan, direction: str) -> list[str]:
    """``cyclegan export`` of one direction of the demo's run into its models folder (fp32 unless more is added);
    the photo -> cartoon model draws the cartoon's dark outlines."""
    args = _cli("export", plan.run, "--out", plan.models, "--direction", direction, "--exporter", plan.exporter)
    return args + ["--outlines", str(OUTLINES)] if direction == "A2B" else args


def export_a2b_with_int8(plan: DemoPlan) -> bool:
    """The photo -> cartoon model in fp32 and int8 from one export (one ONNX export and parity check for both).
    An int8 model that would not keep the picture (under the export's PSNR floor) stops the export before it
    writes anything: then False, and the caller exports the fp32 model alone."""
    args = _export_args(plan, "A2B")
    args += ["--precision", "fp32", "--precision", "int8", "--calibration-dir", plan.dataset / "trainA"]
    if plan.int8_min_psnr is not None:
        args += ["--int8-min-psnr", plan.int8_min_psnr]
    click.echo("    $ " + " ".join(str(a) for a in args))
    result = subprocess.run([str(a) for a in args], cwd=REPO_ROOT, env=_env(), stderr=subprocess.PIPE, text=True)
    if result.returncode == 0:
        return True
    reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
    if result.returncode == 2 and "below the floor" in reason:
        click.echo(f"    int8 model not written (it would not keep the picture): {reason}")
        return False
    raise StageFailed(f"A2B export (fp32 and int8) failed with exit code {result.returncode}: {reason}")


def a2b_model(plan: DemoPlan) -> Path:
    """The fp32 photo -> cartoon model (the reference picture; an int8 variant sits next to it)."""
    from cyclegan.contract.tiles import is_companion

    models = sorted(
        m
        for m in plan.models.glob("*.onnx")
        if not m.name.endswith((".int8.onnx", ".fp16.onnx")) and not is_companion(m)
    )
    for model in models:
        if "A2B" in model.name or "photo2cartoon" in model.name:
            return model
    if not models:
        raise StageFailed(f"no ONNX model in {plan.models}")
    return models[0]


def stylize(plan: DemoPlan) -> None:
    model = a2b_model(plan)
    serve = [sys.executable, "-m", "serve", "stylize", str(model)]
    _run(serve + [str(plan.assets / "photos" / "test"), "--out", str(plan.stylized / "photos"), "--overwrite"])
    _run(serve + [str(plan.assets / "clip.mp4"), "--out", str(plan.stylized / "clip"), "--overwrite"])


def evaluate(plan: DemoPlan) -> None:
    """``cyclegan eval`` on the exported model and the held-out photos: what the summary reports.

    KID/FID against the cartoon's held-out frames where the Inception weights are on disk (nothing is
    downloaded by the demo); the checkerboard score always.
    """
    from cyclegan.evaluation.distances import inception_weights_present

    args = _cli("eval", a2b_model(plan), plan.assets / "photos" / "test", "--json", plan.eval_json, "--overwrite")
    if inception_weights_present():
        args += ["--reference", plan.dataset / "testB"]
    else:
        click.echo("    (KID/FID skipped: the Inception weights are not on disk; `cyclegan eval --help` says how)")
    _run(args)


# --------------------------------------------------------------------------- report


def contact_sheet(plan: DemoPlan, path: Path) -> Path:
    """Each held-out photo next to its stylized version, and a row of the cartoon's frames to compare with."""
    from itertools import zip_longest

    from PIL import Image, ImageDraw

    from cyclegan.contract.images import list_images

    pairs = []
    for source in sorted((plan.assets / "photos" / "test").glob("*.jpg")):
        outputs = sorted((plan.stylized / "photos").glob(source.stem + ".*"))
        if outputs:
            pairs.append((Image.open(source).convert("RGB"), Image.open(outputs[0]).convert("RGB")))
    if not pairs:
        raise StageFailed("no stylized photos to put on the contact sheet")
    style = [Image.open(path).convert("RGB") for path in list_images(plan.dataset / "trainB")[::7][:3]]
    labelled = [(("photo (held out)", "stylized"), pair) for pair in pairs] + [(("the style: training frames",), style)]
    height = 256
    rows = [
        (labels, [im.resize((round(im.width * height / im.height), height)) for im in images])
        for labels, images in labelled
    ]
    width = max(sum(im.width for im in images) + 30 for _, images in rows)
    sheet = Image.new("RGB", (width, len(rows) * (height + 28) + 10), "white")
    draw = ImageDraw.Draw(sheet)
    y = 10
    for labels, images in rows:
        x = 10
        for label, image in zip_longest(labels, images, fillvalue=""):
            sheet.paste(image, (x, y + 18))
            draw.text((x, y + 2), label, fill="black")
            x += image.width + 10
        y += height + 28
    sheet.save(path)
    return path


def loss_curves(plan: DemoPlan, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (plan.run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        raise StageFailed("metrics.jsonl is empty: no loss to plot")
    keys = sorted({k for row in rows for k in row if k.startswith("loss/")})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in keys:
        points = [(row["step"], row[key]) for row in rows if key in row]
        target = axes[0] if key.split("/")[-1].startswith("D") or "G_" in key else axes[1]
        target.plot(*zip(*points), label=key.split("/", 1)[1])
    axes[0].set_title("adversarial losses")
    axes[1].set_title("cycle and identity losses")
    for axis in axes:
        axis.set_xlabel("step")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_summary(plan: DemoPlan, clock: StageClock, path: Path) -> Path:
    lines = ["CycleGAN toolkit demo", "=" * 21, ""]
    lines += [f"{name:<10} {seconds:8.1f} s" for name, seconds in clock.seconds.items()]
    lines += [f"{'total':<10} {sum(clock.seconds.values()):8.1f} s", ""]
    lines += [
        f"dataset:        {plan.dataset}",
        f"run:            {plan.run}",
        f"models:         {plan.models}",
        f"stylized:       {plan.stylized}",
        f"contact sheet:  {plan.out / 'contact_sheet.png'}",
        f"loss curves:    {plan.out / 'loss_curves.png'}",
    ]
    lines += ["", *eval_lines(plan)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def eval_lines(plan: DemoPlan) -> list[str]:
    """The exported model's scores on the held-out photos (``cyclegan eval``), next to the photos as they are."""
    if not plan.eval_json.is_file():
        return ["eval scores:    none (the evaluate stage did not run)"]
    report = json.loads(plan.eval_json.read_text(encoding="utf-8"))
    lines = [f"eval of {a2b_model(plan).name} on {report['images']} held-out photos (model / photo as is):"]
    for key, value in report["scores"].items():
        base = report["baseline"].get(key)
        lines.append(f"  {key:<13} {value:10.4f}" + (f"   / {base:.4f}" if base is not None else ""))
    lines.append("  (checkerboard: about 1 = no stride-2 grid, clean outlines 1-2, a grid several times more)")
    cartoon = cartoon_flatness(plan)
    on_cartoon = "" if cartoon is None else f", {cartoon:.4f} on the cartoon's held-out frames"
    lines.append(f"  (flatness: share of flat pixels{on_cartoon}; colour_shift: palette drift from the photo, 0-255)")
    return lines


def cartoon_flatness(plan: DemoPlan) -> float | None:
    """The mean flatness of the cartoon's held-out frames (testB): the figure a cartoon style moves towards."""
    import numpy as np

    from cyclegan.contract.images import list_images, open_image
    from cyclegan.evaluation.scores import flatness

    frames = list_images(plan.dataset / "testB")
    if not frames:
        return None
    return float(np.mean([flatness(np.asarray(open_image(p).convert("RGB"))) for p in frames]))


def report(plan: DemoPlan) -> None:
    contact_sheet(plan, plan.out / "contact_sheet.png")
    loss_curves(plan, plan.out / "loss_curves.png")


def run_demo(plan: DemoPlan, *, clean: bool = False) -> StageClock:
    if clean and plan.out.exists():
        shutil.rmtree(plan.out)
    plan.out.mkdir(parents=True, exist_ok=True)
    clock = StageClock()
    clock.run("assets", make_assets, plan)
    clock.run("dataset", build_dataset, plan)
    clock.run("train", train, plan, resume=not clean)
    clock.run("export", export, plan)
    clock.run("stylize", stylize, plan)
    clock.run("evaluate", evaluate, plan)
    clock.run("report", report, plan)
    summary = write_summary(plan, clock, plan.out / "summary.txt")
    click.echo("\n" + summary.read_text())
    return clock


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("demo_out"),
    show_default=True,
    help="Where every stage writes its outputs.",
)
@click.option("--clean", is_flag=True, help="Delete earlier outputs and start from nothing (default: resume).")
@click.option(
    "--steps", type=int, default=None, help=f"Training steps (default {DemoPlan.steps}, about 6 minutes on 2 cores)."
)
@click.option("--small", is_flag=True, help="A tiny run (seconds), as the end-to-end test does.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="A training config override on top of configs/tiny_cpu.yaml (repeatable), e.g. --set model.ngf=32.",
)
@reports_errors
def main(out: Path, clean: bool, steps: int | None, small: bool, overrides: tuple[str, ...]) -> None:
    """Run the whole pipeline on the embedded default data."""
    plan = DemoPlan.small(out) if small else DemoPlan(out=out)
    if steps is not None:
        plan.steps = steps
    plan.extra_overrides += list(overrides)
    run_demo(plan, clean=clean)


if __name__ == "__main__":
    main()
