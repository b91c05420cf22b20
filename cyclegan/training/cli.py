"""``cyclegan train`` and ``train_accel.py``: one click command over :func:`cyclegan.training.trainer.train`.

Problems with the config, the data or the run folder exit with code 2 and a one-line message (no traceback),
diverged training with code 1 (see :mod:`cyclegan.contract.errors`).
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from cyclegan.config import load_config
from cyclegan.contract.errors import reports_errors


@click.command(
    name="train",
    context_settings={"help_option_names": ["-h", "--help"], "ignore_unknown_options": False},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML preset, e.g. configs/tiny_cpu.yaml (defaults when left out).",
)
@click.option(
    "--resume",
    default=None,
    metavar="latest|PATH",
    help="Continue the run in train.output_dir from its newest checkpoint, or from a checkpoint dir.",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.argument("overrides", nargs=-1)
@reports_errors
def train(config_path: str | None, resume: str | None, no_progress: bool, overrides: tuple[str, ...]) -> None:
    """Train a CycleGAN. OVERRIDES are section.key=value, e.g. train.max_steps=200 data.root=datasets/x.

    For several processes or GPUs run `accelerate launch train_accel.py ...` with the same arguments.
    """
    cfg = load_config(config_path, overrides)
    from cyclegan.training.trainer import train as run_training  # torch loads only once the config is valid

    result = run_training(cfg, resume, progress=not no_progress)
    click.echo(f"done: step {result.step}, epoch {result.epoch}, run dir {result.run_dir}", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry for ``train_accel.py`` / ``python -m``; exits with the command's code."""
    train.main(args=list(argv) if argv is not None else None, prog_name="train_accel.py")
