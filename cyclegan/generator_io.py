"""Generator weights on disk: one ``.safetensors`` file whose header carries the :class:`GeneratorCard`.

No pickles anywhere: the card is JSON in the header metadata (key ``"cyclegan"``), so
:func:`read_card` reads a few kilobytes and never touches the weights.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import cyclegan
from cyclegan.config import Config
from cyclegan.contract import files, pixels
from cyclegan.contract.card import Direction, GeneratorCard
from cyclegan.contract.errors import ToolkitError
from cyclegan.models import generator_from_card

PathLike = str | os.PathLike


class GeneratorFileError(ToolkitError):
    """The file is not a readable safetensors generator, or its weights do not fit its card."""


def _unwrap(module: nn.Module) -> nn.Module:
    """Strip DDP/DataParallel and torch.compile wrappers so parameter names are the plain ones."""
    while True:
        if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


def save_generator(path: PathLike, module: nn.Module, card: GeneratorCard) -> Path:
    """Write ``module``'s weights and ``card`` to ``path`` atomically; returns the path.

    The file appears complete or not at all: it is written to a temporary name in the same
    directory, fsynced and moved over ``path`` with ``os.replace``. Every tensor is copied to a
    contiguous CPU tensor, which also un-shares tied weights (safetensors refuses shared storage).
    """
    path = Path(path)
    tensors = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in _unwrap(module).state_dict().items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise files.output_error(path.parent, exc) from None
    with files.atomic_path(path, fsync=True) as tmp:  # a full disk: OutputError, no temporary file left
        try:
            save_file(tensors, str(tmp), metadata=card.to_props())
        except SafetensorError as exc:  # safetensors reports I/O failures as its own error type
            raise OSError(errno.EIO, str(exc)) from None
    return path


def _header(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise GeneratorFileError(f"generator file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise GeneratorFileError(
            f"{path} is not a readable .safetensors file ({exc}); expected one written by save_generator"
        ) from None


def read_card(path: PathLike) -> GeneratorCard:
    """The card from the file header, without loading any weights."""
    path = Path(path)
    return GeneratorCard.from_props(_header(path), where=str(path))


def load_generator(path: PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, GeneratorCard]:
    """Rebuild the generator the card describes, load its weights on ``device``; returns (module in eval mode, card)."""
    path = Path(path)
    card = read_card(path)
    _check_shapes(path, card)  # before building: a card claiming ngf=10**6 must not allocate the network
    module = generator_from_card(card)
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GeneratorFileError(
            f"{path}: the weights cannot be read ({exc}); the file is truncated or corrupt"
        ) from None
    broken = [name for name, tensor in state.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if broken:
        raise GeneratorFileError(
            f"{path}: {len(broken)} weight tensor(s) hold NaN or infinite values (e.g. {broken[0]}): the training "
            "diverged before these weights were written; use an earlier checkpoint"
        )
    module.to(device)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise GeneratorFileError(
            f"{path}: the weights do not match the architecture in its card ({card.generator}, ngf={card.ngf}, "
            f"norm={card.norm}): {exc}"
        ) from None
    return module.eval(), card


def with_outlines(module: nn.Module, card: GeneratorCard, sigma: float) -> tuple[nn.Module, GeneratorCard]:
    """The same generator drawing dark outlines of this sigma (px; 0 = none) on its output: the card field
    ``outlines`` (cyclegan.models.skip), set at export. Needs a generator with the image skip (CardError otherwise)."""
    inked = dataclasses.replace(card, outlines=sigma)
    inked.validate()
    rebuilt = generator_from_card(inked).to(next(module.parameters()).device)
    rebuilt.load_state_dict(module.state_dict())  # the outlines have no weights: the same keys
    return rebuilt.eval(), inked


def _check_shapes(path: Path, card: GeneratorCard) -> None:
    """The tensors in the file are the ones the card's architecture has (compared on the meta device)."""
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in generator_from_card(card).state_dict().items()}
    try:
        with safe_open(str(path), framework="pt") as fh:
            stored = {name: tuple(fh.get_slice(name).get_shape()) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise GeneratorFileError(
            f"{path}: the weights cannot be read ({exc}); the file is truncated or corrupt"
        ) from None
    if stored != expected:
        missing = sorted(set(expected) - set(stored))
        wrong = sorted(name for name in set(expected) & set(stored) if expected[name] != stored[name])
        what = (
            f"{wrong[0]} is {list(stored[wrong[0]])} in the file, {list(expected[wrong[0]])} for the card"
            if wrong
            else f"{len(missing)} tensor(s) missing, e.g. {missing[0]}"
            if missing
            else f"unexpected tensor(s), e.g. {sorted(set(stored) - set(expected))[0]}"
        )
        raise GeneratorFileError(
            f"{path}: the weights do not match the architecture in its card ({card.generator}, ngf={card.ngf}, "
            f"norm={card.norm}): {what}"
        )


def card_from_config(
    cfg: Config, direction: Direction, step: int = 0, epoch: int = 0, ema: bool = False
) -> GeneratorCard:
    """The card for one generator of a training run (A2B = G_A maps domain_a to domain_b)."""
    m, d = cfg.model, cfg.data
    a2b = direction == "A2B"
    return GeneratorCard(
        generator=m.generator,
        input_nc=m.input_nc if a2b else m.output_nc,
        output_nc=m.output_nc if a2b else m.input_nc,
        ngf=m.ngf,
        norm=m.norm,
        use_dropout=m.use_dropout,
        upsample=m.upsample,
        global_skip=m.global_skip,
        skip_blur=m.skip_blur,
        skip_filter=m.skip_filter,
        skip_change=m.skip_change,
        skip_levels=m.skip_levels,
        direction=direction,
        source_domain=d.domain_a if a2b else d.domain_b,
        target_domain=d.domain_b if a2b else d.domain_a,
        mean=pixels.MEAN,
        std=pixels.STD,
        train_size=d.crop_size,
        step=step,
        epoch=epoch,
        ema=ema,
        run_name=cfg.name,
        project_version=cyclegan.__version__,
    )


__all__ = ["GeneratorFileError", "card_from_config", "load_generator", "read_card", "save_generator"]
