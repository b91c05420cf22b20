"""The ``cyclegan`` command: one click group, each stage a lazily imported sub-command.

Sub-commands are imported only when invoked, so ``cyclegan stylize``, ``cyclegan bot`` and
``cyclegan web`` never load torch, and ``cyclegan --help`` is fast.
"""

from __future__ import annotations

import importlib

import click

# name -> (module, attribute, one-line help). Each stage owns its own click command.
_COMMANDS = {
    "frames": ("cyclegan.frames.cli", "frames", "Build a style dataset from video files."),
    "images": ("cyclegan.frames.cli", "images", "Import a folder of photos into a dataset domain."),
    "train": ("cyclegan.training.cli", "train", "Train a CycleGAN (single process; see train_accel.py)."),
    "export": ("export.cli", "export", "Export trained generators to verified ONNX models."),
    "stylize": ("serve.cli", "stylize", "Stylize images, folders and videos with an ONNX model."),
    "bot": ("serve.cli", "bot", "Run the Telegram bot."),
    "web": ("serve.cli", "web", "Serve a web page to try the styles in a browser."),
    "import-pth": (
        "cyclegan.import_pth",
        "import_pth_command",
        "Import a generator of the reference implementation (.pth).",
    ),
    "eval": (
        "cyclegan.evaluation.cli",
        "eval_command",
        "Score a model on images: MAE/PSNR/SSIM, KID/FID, checkerboard.",
    ),
    "push": ("cyclegan.hub.cli", "push", "Upload models and a model card to the Hugging Face Hub."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS:
            module, attr, _ = _COMMANDS[name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in sorted(_COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cyclegan-toolkit")
def main() -> None:
    """CycleGAN stylization toolkit: video -> dataset -> training -> ONNX -> serving."""


if __name__ == "__main__":
    main()
