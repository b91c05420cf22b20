"""``cyclegan eval``: score a run folder, a .safetensors generator or an exported ONNX model on a folder of images."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cyclegan.contract.errors import reports_errors


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=str)
@click.argument("images", type=click.Path(path_type=Path))
@click.option(
    "--targets",
    type=click.Path(path_type=Path),
    default=None,
    help="Expected outputs of IMAGES (same file names and sizes): MAE, PSNR, SSIM.",
)
@click.option(
    "--reference",
    type=click.Path(path_type=Path),
    default=None,
    help="Images of the target domain (any names, sizes): KID and FID (Inception weights fetched on first use).",
)
@click.option(
    "--direction",
    type=click.Choice(["A2B", "B2A"]),
    default=None,
    help="Which generator of a run folder (default A2B; best_<direction> when training kept one).",
)
@click.option(
    "--kid-subset-size",
    type=int,
    default=None,
    help="Images per KID subset (default: min(100, images in either set)).",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the scores here."
)
@click.option("--overwrite", is_flag=True, help="Replace the --json file if it exists.")
@click.option("--threads", type=click.IntRange(1, 1024), default=None, help="CPU threads for the model.")
@click.pass_context
@reports_errors
def eval_command(
    ctx: click.Context,
    model: str,
    images: Path,
    targets: Path | None,
    reference: Path | None,
    direction: str | None,
    kid_subset_size: int | None,
    json_path: Path | None,
    overwrite: bool,
    threads: int | None,
) -> None:
    """Score MODEL (a run folder, a .safetensors generator or an .onnx model) on the images in IMAGES.

    Every score is shown for the model and for the images returned unchanged (the baseline to beat). The
    checkerboard score is how much more the output's spectrum spikes at the 2-pixel period than its input's:
    about 1 = no grid (clean outlines score 1-2), several times more = a stride-2 grid.
    """
    from cyclegan.evaluation import evaluate, models

    if json_path is not None and json_path.exists() and not overwrite:
        raise models.EvalInputError(f"{json_path} already exists: pass --overwrite to replace it (nothing was done)")
    source = models.resolve(model, direction)
    for path, what in ((images, "images"), (targets, "targets"), (reference, "reference")):
        if path is not None and not path.is_dir():
            raise models.EvalInputError(f"{what} folder not found: {path}")
    loaded = models.load(source, direction if source.kind != "run" else None, threads)
    # Tests hand in a small feature network of their own through the click context (ctx.obj["feature"]).
    feature = ctx.obj.get("feature") if isinstance(ctx.obj, dict) else None
    report = evaluate.evaluate(
        loaded.translate,
        images,
        targets=targets,
        reference=reference,
        kid_subset_size=kid_subset_size,
        feature=feature,
    )
    card = loaded.card
    click.echo(
        f"{source.path} ({source.kind}, {card.direction}: {card.source_domain} -> {card.target_domain}, "
        f"step {card.step}) on {report.images} image(s) of {images}"
    )
    click.echo(evaluate.table(report))
    if json_path is not None:
        from cyclegan.contract import files

        payload = {
            "model": str(source.path),
            "kind": source.kind,
            "direction": card.direction,
            "step": card.step,
            "images": str(images),
            "targets": None if targets is None else str(targets),
            "reference": None if reference is None else str(reference),
            **report.to_dict(),
        }
        try:
            json_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise files.output_error(json_path.parent, exc) from None
        files.write_text_atomic(json_path, json.dumps(payload, indent=2, allow_nan=False) + "\n")
        click.echo(f"wrote {json_path}")
