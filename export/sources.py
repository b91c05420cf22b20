"""What to export and where it goes: input resolution and output file names (no torch: fast CLI errors).

File names: ``<name>_<direction>.onnx`` for fp32 and ``<name>_<direction>.<precision>.onnx`` for the
reduced precisions (e.g. ``monet_A2B.onnx``, ``monet_A2B.int8.onnx``), where ``name`` is ``--name``,
else the card's run name, else the run folder's (or the .safetensors file's) name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cyclegan.contract.card import DIRECTIONS, GeneratorCard
from cyclegan.contract.errors import ToolkitError


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
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "generator"
    suffix = "" if precision == "fp32" else f".{precision}"
    return out_dir / f"{safe}_{direction}{suffix}.onnx"
