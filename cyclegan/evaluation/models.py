"""The three kinds of model `cyclegan eval` scores, behind one function: uint8 HxWx3 image -> same-size image.

* a training run folder: its ``generators/best_<direction>.safetensors`` when training kept one (``train.eval_every``),
  else ``generators/<direction>.safetensors``;
* one ``.safetensors`` generator (its card says the direction);
* an exported ``.onnx`` model (or an ``hf://`` one), run through serving's :class:`serve.stylizer.Stylizer`, so the
  scores are those of exactly what users get (at the image's own size: ``max_side=0``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cyclegan.contract.card import DIRECTIONS, GeneratorCard
from cyclegan.contract.errors import ToolkitError

Translate = Callable[[np.ndarray], np.ndarray]


class EvalInputError(ToolkitError):
    """A model, folder or option of `cyclegan eval` is not usable; the message says which and what to do."""


@dataclass(frozen=True)
class ModelSource:
    path: Path
    kind: str  # "run" | "safetensors" | "onnx"


@dataclass
class LoadedModel:
    source: ModelSource
    card: GeneratorCard
    translate: Translate  # uint8 HxWx3 -> uint8 HxWx3 of the same size


def resolve(source: str | os.PathLike[str], direction: str | None) -> ModelSource:
    """Which file to load (cheap checks, no torch): a run folder's generator, a .safetensors or an .onnx file."""
    text = str(source)
    if direction is not None and direction not in DIRECTIONS:
        raise EvalInputError(f"--direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if text.startswith("hf://"):
        from serve.hub import resolve_model

        return ModelSource(resolve_model(text), "onnx")
    path = Path(source)
    if path.is_dir():
        wanted = direction or "A2B"
        for name in (f"best_{wanted}.safetensors", f"{wanted}.safetensors"):
            if (path / "generators" / name).is_file():
                return ModelSource(path / "generators" / name, "run")
        raise EvalInputError(
            f"{path} is not a training run with an {wanted} generator: neither generators/best_{wanted}.safetensors "
            f"nor generators/{wanted}.safetensors exists (pass a run folder, a .safetensors or an .onnx file)"
        )
    if not path.exists():
        raise EvalInputError(f"no such model: {path} (pass a run folder, a .safetensors or an .onnx file)")
    if path.suffix.lower() not in (".safetensors", ".onnx"):
        raise EvalInputError(f"{path}: expected a run folder, a .safetensors generator or an .onnx model")
    return ModelSource(path, "onnx" if path.suffix.lower() == ".onnx" else "safetensors")


def load(source: ModelSource, direction: str | None = None, threads: int | None = None) -> LoadedModel:
    """Load the model; ``direction`` (when given) must be the file's own."""
    if source.kind == "onnx":
        loaded = _load_onnx(source, threads)
    else:
        loaded = _load_safetensors(source, threads)
    card = loaded.card
    if direction is not None and card.direction != direction:
        raise EvalInputError(f"{source.path} is the {card.direction} generator, not {direction}")
    if card.input_nc != 3 or card.output_nc != 3:
        raise EvalInputError(
            f"{source.path}: the scores are defined on RGB images; this generator maps {card.input_nc} to "
            f"{card.output_nc} channels"
        )
    return loaded


def _load_onnx(source: ModelSource, threads: int | None) -> LoadedModel:
    from PIL import Image

    from serve.stylizer import Stylizer

    stylizer = Stylizer(source.path, threads=threads, max_side=0)

    def translate(image: np.ndarray) -> np.ndarray:
        return np.asarray(stylizer.stylize(Image.fromarray(image), max_side=0).convert("RGB"))

    return LoadedModel(source, stylizer.card, translate)


def _load_safetensors(source: ModelSource, threads: int | None) -> LoadedModel:
    import torch

    from cyclegan.contract import pixels, sizes
    from cyclegan.generator_io import load_generator

    if threads is not None:
        torch.set_num_threads(threads)
    module, card = load_generator(source.path)

    @torch.inference_mode()
    def translate(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        x = pixels.to_model(image[None], card.mean, card.std)
        x, (top, left) = sizes.pad_centred(x, card.size_multiple, card.min_side)
        y = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).float().numpy()
        return pixels.from_model(y[:, :, top : top + h, left : left + w], card.mean, card.std)[0]

    return LoadedModel(source, card, translate)
