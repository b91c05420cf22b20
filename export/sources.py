"""What to export and where it goes: input resolution and output file names (no torch: fast CLI errors).

File names: ``<name>_<direction>.onnx`` for fp32 and ``<name>_<direction>.<precision>.onnx`` for the
reduced precisions (e.g. ``monet_A2B.onnx``, ``monet_A2B.int8.onnx``), where ``name`` is ``--name``,
else the card's run name, else the run folder's (or the .safetensors file's) name. Two runs of one preset share
the run name, so an existing file is never replaced without ``--overwrite`` (:func:`refuse_existing`).
"""

from __future__ import annotations

import os
from pathlib import Path

from cyclegan.contract.card import DIRECTIONS, GeneratorCard
from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.files import safe_stem


class ExportError(ToolkitError):
    """An export step failed; the message says which model and what to do."""


def resolve_sources(source: str | os.PathLike[str], direction: str | None) -> list[Path]:
    """The generator files to export: a run folder's generators/ or one .safetensors file."""
    source = Path(source)
    if direction not in (None, "both", *DIRECTIONS):
        raise ExportError(f"--direction must be A2B, B2A or both, got {direction!r}")
    if source.is_dir():
        wanted = DIRECTIONS if direction in (None, "both") else (direction,)
        files = [source / "generators" / f"{d}.safetensors" for d in wanted]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ExportError(
                f"{source} is not a training run with {'/'.join(wanted)} generators: missing {', '.join(missing)} "
                "(pass a run folder written by `cyclegan train` or one .safetensors file)"
            )
        return files
    if source.is_file():
        if source.suffix != ".safetensors":
            raise ExportError(f"{source}: expected a .safetensors generator file or a training run folder")
        return [source]
    raise ExportError(f"no such run folder or generator file: {source}")


def default_name(source: Path, card: GeneratorCard) -> str:
    if card.run_name:
        return card.run_name
    if source.parent.name == "generators":
        return source.parent.parent.resolve().name
    return source.stem


def output_path(out_dir: Path, name: str, direction: str, precision: str) -> Path:
    safe = safe_stem(name, "generator", sep="-", keep="-_.")
    suffix = "" if precision == "fp32" else f".{precision}"
    return out_dir / f"{safe}_{direction}{suffix}.onnx"


def refuse_existing(paths: list[Path]) -> None:
    """An export never replaces a model without ``--overwrite``: raise :class:`ExportError` naming what exists."""
    existing = [path for path in paths if path.exists()]
    if existing:
        raise ExportError(
            f"{existing[0]}{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''} already exists"
            f"{_describe(existing[0])}: pass --overwrite to replace it, or --name NAME to export under another "
            "name (nothing was written)"
        )


def _describe(path: Path) -> str:
    """`` (run 'x', step N)`` from an existing model's card, or nothing when it has none."""
    try:
        import onnx

        from cyclegan.contract.card import GeneratorCard

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        card = GeneratorCard.from_props(props, where=str(path))
    except Exception:  # noqa: BLE001 - only a courtesy in the message
        return ""
    return f" (exported from run {card.run_name!r} at step {card.step})"
