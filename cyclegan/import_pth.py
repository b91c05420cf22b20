"""``cyclegan import-pth``: a generator of junyanz/pytorch-CycleGAN-and-pix2pix (``*.pth``) -> safetensors + card.

The reference saves plain state dicts (``torch.save(net.state_dict())``: ``latest_net_G_A.pth``, and the
released ``NAME.pth`` files its ``scripts/download_cyclegan_model.sh`` fetches). This toolkit's generators
use the reference's layer names, so the weights map one to one. The import:

* loads with ``torch.load(weights_only=True)``: tensors only, no pickled code runs (a pickle that needs
  code, e.g. ``torch.save(model)``, is refused and named);
* strips ``module.`` prefixes (checkpoints of ``DataParallel``-wrapped models);
* drops the InstanceNorm running statistics old checkpoints carry (``running_mean``, ``running_var``,
  ``num_batches_tracked`` of InstanceNorm layers, which PyTorch < 0.4 saved and the reference's own loader
  also deletes);
* checks every key and shape against the architecture you name and refuses with the differences;
* writes ``.safetensors`` with a :class:`~cyclegan.contract.card.GeneratorCard` (as training does), ready
  for ``cyclegan export``.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import click
import torch
from torch import nn

import cyclegan
from cyclegan.contract.card import GENERATOR_KINDS, NORM_KINDS, GeneratorCard
from cyclegan.contract.errors import ToolkitError, reports_errors
from cyclegan.generator_io import save_generator
from cyclegan.models import make_generator

REFERENCE = "junyanz/pytorch-CycleGAN-and-pix2pix"
RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")
MAX_LISTED = 6  # keys named in one error line


class ImportPthError(ToolkitError, ValueError):
    """The file is not a state dict of the named architecture; the message says what differs."""


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth`` state dict, read without running pickled code, ``module.`` prefixes stripped."""
    if not path.is_file():
        raise ImportPthError(f"no such file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needed = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if needed:
            raise ImportPthError(
                f"{path} is a pickle that needs Python code to load ({needed.group(1)}); refusing to run it "
                "(torch.load(weights_only=True)): save the generator's state_dict() instead"
            ) from None
        raise ImportPthError(f"{path} is not a PyTorch checkpoint that can be read safely (weights only)") from None
    except (EOFError, KeyError, IndexError, RuntimeError, ValueError, OSError) as exc:
        raise ImportPthError(f"{path} is not a PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, Mapping):
        raise ImportPthError(f"{path} holds a {type(state).__name__}, not a state dict (a mapping of tensors)")
    others = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if others:
        hint = " (a training checkpoint? save the generator's state_dict() alone)" if len(others) < len(state) else ""
        raise ImportPthError(f"{path} is not a state dict: {_listed(others)} are not tensors{hint}")
    return {_strip_module(str(k)): v for k, v in state.items()}


def _strip_module(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module.") :]
    return key


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    return shown + (f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else "")


def _instance_norm_stats(state: Mapping[str, torch.Tensor], module: nn.Module) -> list[str]:
    """Keys of ``state`` that are running statistics of a module's InstanceNorm layers (unused by them)."""
    norms = {name for name, m in module.named_modules() if isinstance(m, nn.InstanceNorm2d) and m.running_mean is None}
    found = []
    for key in state:
        prefix, _, leaf = key.rpartition(".")
        if leaf in RUNNING_STATS and prefix in norms:
            found.append(key)
    return found


def match_state_dict(
    state: dict[str, torch.Tensor], module: nn.Module, what: str
) -> tuple[dict[str, torch.Tensor], int]:
    """``state`` without InstanceNorm running stats, checked key by key and shape by shape against ``module``.

    Returns (the state dict to load, how many running-stat keys were dropped); raises :class:`ImportPthError`
    naming missing keys, unexpected keys and shape differences.
    """
    original = state
    dropped = _instance_norm_stats(state, module)
    state = {k: v for k, v in state.items() if k not in set(dropped)}
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected {_listed(unexpected)}")
        if shapes:
            parts.append(f"shapes differ (file vs {what}): {_listed(shapes)}")
        raise ImportPthError(f"not a {what} state dict: " + "; ".join(parts) + _hint(original, expected))
    return state, len(dropped)


def _hint(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str:
    """What the file itself says about the options to try, where it differs from the named architecture."""

    def blocks(keys) -> set[int]:
        return {int(m.group(1)) for k in keys if (m := re.match(r"model\.(\d+)\.conv_block\.", k))}

    if any(k.startswith("model.model.") for k in state):
        return " (it looks like a U-Net: try --generator unet_256 or unet_128)"
    found, wanted = len(blocks(state)), len(blocks(expected))
    if found and found != wanted:
        return f" (it has {found} residual blocks: try --generator resnet_{found}blocks)"
    first = "model.1.weight"  # ResNet: ReflectionPad2d(3), then the 7x7 convolution
    if first in state and first in expected and state[first].shape != expected[first].shape:
        ngf, in_c = state[first].shape[:2]
        return f" (its first convolution has {ngf} filters on {in_c} channels: try --ngf {ngf} --input-nc {in_c})"

    def dropout(keys: Mapping[str, torch.Tensor]) -> bool:  # a dropout layer shifts the second conv to index 6
        return any(re.search(r"\.conv_block\.6\.weight$", k) and t.ndim == 4 for k, t in keys.items())

    if dropout(state) != dropout(expected):
        return " (try --dropout)" if dropout(state) else " (try --no-dropout)"
    batch_norm = any(k.endswith(".running_mean") and k[: -len("running_mean")] + "weight" in state for k in state)
    if batch_norm and not any(k.endswith(".running_mean") for k in expected):
        return " (it has BatchNorm layers: try --norm batch)"
    return ""


def import_pth(
    src: Path,
    out: Path,
    *,
    generator: str,
    norm: str,
    name: str,
    direction: str,
    domains: tuple[str, str],
    ngf: int = 64,
    input_nc: int = 3,
    output_nc: int = 3,
    dropout: bool = False,
    train_size: int = 256,
) -> tuple[GeneratorCard, int]:
    """Convert ``src`` into ``out`` (.safetensors + card); returns (the card, running-stat keys dropped)."""
    if direction not in ("A2B", "B2A"):
        raise ImportPthError(f"--direction must be A2B or B2A, got {direction!r}")
    module = make_generator(generator, input_nc, output_nc, ngf, norm, dropout)
    what = f"{generator} (ngf={ngf}, norm={norm}{', dropout' if dropout else ''}, {input_nc}->{output_nc} channels)"
    state, dropped = match_state_dict(load_state_dict(src), module, what)
    module.load_state_dict(state, strict=True)
    a2b = direction == "A2B"
    card = GeneratorCard(
        generator=generator,
        input_nc=input_nc,
        output_nc=output_nc,
        ngf=ngf,
        norm=norm,
        use_dropout=dropout,
        direction=direction,
        source_domain=domains[0] if a2b else domains[1],
        target_domain=domains[1] if a2b else domains[0],
        train_size=train_size,
        run_name=name,
        project_version=cyclegan.__version__,
        extra={"imported_from": src.name, "imported_sha256": _sha256(src), "reference": REFERENCE},
    )
    save_generator(out, module, card)
    return card, dropped


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _domains(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, str]:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise click.BadParameter("give the two domain names A,B, e.g. photo,monet")
    return parts[0], parts[1]


@click.command("import-pth", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--generator", type=click.Choice(GENERATOR_KINDS), default="resnet_9blocks", show_default=True)
@click.option("--norm", type=click.Choice(NORM_KINDS), default="instance", show_default=True)
@click.option("--ngf", type=click.IntRange(min=1), default=64, show_default=True, help="Filters of the first layer.")
@click.option("--input-nc", type=click.IntRange(1, 4), default=3, show_default=True)
@click.option("--output-nc", type=click.IntRange(1, 4), default=3, show_default=True)
@click.option("--dropout/--no-dropout", default=False, show_default=True, help="The generator was built with dropout.")
@click.option("--name", required=True, help="The style's name (model card run name; names the exported files).")
@click.option(
    "--direction",
    type=click.Choice(["A2B", "B2A"]),
    default="A2B",
    show_default=True,
    help="Which way this generator maps between the --domains (the reference's G_A is A2B).",
)
@click.option("--domains", required=True, callback=_domains, help="The two domain names A,B, e.g. photo,monet.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output .safetensors (default: NAME_DIRECTION.safetensors next to SRC).",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@reports_errors
def import_pth_command(
    src: Path,
    generator: str,
    norm: str,
    ngf: int,
    input_nc: int,
    output_nc: int,
    dropout: bool,
    name: str,
    direction: str,
    domains: tuple[str, str],
    out: Path | None,
    overwrite: bool,
) -> None:
    """Import SRC, a generator state dict saved by junyanz/pytorch-CycleGAN-and-pix2pix (.pth).

    The released styles are resnet_9blocks with instance norm and no dropout (the defaults), e.g.
    `cyclegan import-pth style_monet.pth --name style_monet --domains photo,monet`.
    """
    out = out or src.with_name(f"{name}_{direction}.safetensors")
    if out.suffix != ".safetensors":
        raise click.BadParameter(f"{out} must end in .safetensors", param_hint="--out")
    if out.exists() and not overwrite:
        raise ImportPthError(f"{out} exists; pass --overwrite to replace it")
    card, dropped = import_pth(
        src,
        out,
        generator=generator,
        norm=norm,
        name=name,
        direction=direction,
        domains=domains,
        ngf=ngf,
        input_nc=input_nc,
        output_nc=output_nc,
        dropout=dropout,
    )
    note = f"; dropped {dropped} InstanceNorm running-stat keys" if dropped else ""
    click.echo(f"wrote {out}: {card.title}, {generator}, ngf={ngf}, norm={norm}{note}")
    click.echo(f"next: cyclegan export {out} --out models/")
