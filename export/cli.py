"""``cyclegan export`` / ``python -m export``: safetensors generators -> verified ONNX models."""

from __future__ import annotations

from pathlib import Path

import click

from cyclegan.contract.errors import reports_errors


@click.command("export", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the .onnx files (created if needed).",
)
@click.option(
    "--direction",
    type=click.Choice(["A2B", "B2A", "both"]),
    default=None,
    help="Which generator of a run folder to export (default: both; a single file: its own).",
)
@click.option("--opset", type=int, default=18, show_default=True, help="ONNX opset version.")
@click.option(
    "--precision",
    "precisions",
    type=click.Choice(["fp32", "fp16", "int8"]),
    multiple=True,
    help="Precision(s) to write; repeat for several (default: fp32). fp32 is always verified.",
)
@click.option(
    "--calibration-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Images of the source domain for int8 calibration (needed by --precision int8), e.g. the run's "
    "dataset trainA/ for A2B; a few are held out to measure PSNR against fp32.",
)
@click.option(
    "--calibration-count",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="How many calibration images to use at most.",
)
@click.option(
    "--max-side",
    type=click.IntRange(1),
    default=1024,
    show_default=True,
    help="Recommended maximum image side written into the model for serving.",
)
@click.option("--name", default=None, help="Base name of the output files (default: the run name).")
@click.option(
    "--exporter",
    type=click.Choice(["auto", "dynamo", "torchscript"]),
    default="auto",
    show_default=True,
    help="torch.onnx exporter; auto tries dynamo (smallest graph) and falls back to torchscript.",
)
@click.option(
    "--bench-size",
    type=click.IntRange(0),
    default=256,
    show_default=True,
    help="Side in pixels for the speed report (0: skip timing).",
)
@click.option("--threads", type=click.IntRange(1, 1024), default=None, help="onnxruntime intra-op threads for checks.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace .onnx files that already exist (otherwise an existing file stops the export before it starts).",
)
@click.option(
    "--int8-min-psnr",
    type=click.FloatRange(0, 200, max_open=True),
    default=30.0,
    show_default=True,
    help="Floor for --precision int8: PSNR (dB) against fp32 on held-out calibration-folder images. The first "
    "int8 recipe (fastest first, each keeping more convolutions in float) reaching it is written; if none "
    "does, nothing is written (exit 2).",
)
@click.option("--force", is_flag=True, help="Write the best int8 recipe even under --int8-min-psnr (with a warning).")
@click.option(
    "--outlines",
    type=float,
    default=0.0,
    show_default=True,
    help="Draw dark outlines on the output where the colours change: a soft difference of Gaussians of this sigma "
    "(px, up to 4; 1-1.5 for cartoons), after the network, written into the model. A filter, not learnt; needs a "
    "generator trained with model.global_skip=true.",
)
@reports_errors
def export(
    source: Path,
    out_dir: Path,
    direction: str | None,
    opset: int,
    precisions: tuple[str, ...],
    calibration_dir: Path | None,
    calibration_count: int,
    max_side: int,
    name: str | None,
    exporter: str,
    bench_size: int,
    threads: int | None,
    overwrite: bool,
    int8_min_psnr: float,
    force: bool,
    outlines: float,
) -> None:
    """Export SOURCE (a training run folder or one .safetensors generator) to ONNX.

    Every model is checked against PyTorch with onnxruntime (several sizes, batch 2; max abs
    difference < 1e-4 for fp32); fp16/int8 variants report speed and PSNR against fp32, and their model
    card records them (shown by `serve`). fp16 is for GPU providers: on CPUs it is slower than fp32.
    """
    from export.sources import resolve_sources

    resolve_sources(source, direction)  # cheap checks first, before torch is imported

    from export.pipeline import ExportOptions, export_source

    options = ExportOptions(
        precisions=tuple(dict.fromkeys(precisions or ("fp32",))),
        opset=opset,
        max_side=max_side,
        calibration_dir=calibration_dir,
        calibration_count=calibration_count,
        exporter=exporter,
        bench_side=bench_size,
        threads=threads,
        overwrite=overwrite,
        int8_min_psnr=int8_min_psnr,
        force=force,
        outlines=outlines,
    )
    reports = export_source(source, out_dir, options, direction=direction, name=name, echo=click.echo)
    for report in reports:
        for variant in report.variants:
            click.echo(f"wrote {variant.path}")
