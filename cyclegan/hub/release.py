"""What one ``cyclegan push`` uploads: the models found in the sources, with what is known about them.

Sources are training run folders (their ``generators/*.safetensors``, the last sample grid, ``config.yaml``
and ``metrics.jsonl``), folders of models (``*.onnx`` and ``*.safetensors`` at the top level) and single
model files. Every model's card is read from the file itself (the safetensors header or the ONNX
``metadata_props``), so the model card says what the files say.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cyclegan.contract.card import GeneratorCard
from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.tiles import is_companion
from export.sources import default_name

MODEL_SUFFIXES = (".onnx", ".safetensors")
EVAL_PREFIX = "eval/"  # metrics.jsonl keys under this prefix are evaluation scores (the card lists them)


class ReleaseError(ToolkitError, ValueError):
    """The sources hold nothing to upload, or something that cannot be uploaded as it is; the message says which."""


@dataclass(frozen=True)
class ModelFile:
    path: Path
    repo_path: str  # its name in the repository
    card: GeneratorCard

    @property
    def kind(self) -> str:
        return "onnx" if self.path.suffix == ".onnx" else "safetensors"


@dataclass
class RunFacts:
    """What a training run folder tells about how its generators were made."""

    path: Path
    name: str
    step: int | None = None
    epoch: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    eval_scores: dict[str, tuple[float, int | None]] = field(default_factory=dict)  # name -> (value, step)
    sample: Path | None = None  # the last samples/step_*.png
    sample_step: int | None = None


@dataclass
class Release:
    models: list[ModelFile]
    runs: list[RunFacts]
    # The seam-free tiles companions the ONNX models' cards list (cyclegan.contract.tiles), uploaded next to them.
    companions: list[Path] = field(default_factory=list)

    @property
    def onnx(self) -> list[ModelFile]:
        return [m for m in self.models if m.kind == "onnx"]


def read_model_card(path: Path) -> GeneratorCard:
    """The card inside a model file: an ONNX model as serving loads it, a safetensors generator's header.

    Raises the readers' own :class:`~cyclegan.contract.errors.ToolkitError` (ModelLoadError, CardError, ...).
    """
    if path.suffix == ".onnx":
        from serve.stylizer import Stylizer

        return Stylizer(path, threads=1).card
    from cyclegan.generator_io import read_card

    return read_card(path)


def _is_run(folder: Path) -> bool:
    return (folder / "generators").is_dir()


def read_run(folder: Path) -> RunFacts:
    """The run's name, last step/epoch, resolved config, latest evaluation scores and last sample grid."""
    facts = RunFacts(folder, folder.resolve().name)
    config = folder / "config.yaml"
    if config.is_file():
        import yaml

        loaded = yaml.safe_load(config.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            facts.config = loaded
            facts.name = str(loaded.get("name") or facts.name)
    metrics = folder / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: the others still count
            if not isinstance(record, dict):
                continue
            step = record.get("step") if isinstance(record.get("step"), int) else None
            if step is not None:
                facts.step = max(facts.step or 0, step)
            if isinstance(record.get("epoch"), int):
                facts.epoch = record["epoch"]
            for key, value in record.items():
                if key.startswith(EVAL_PREFIX) and isinstance(value, (int, float)) and math.isfinite(value):
                    facts.eval_scores[key[len(EVAL_PREFIX) :]] = (float(value), step)
    samples = sorted((folder / "samples").glob("step_*.png"))
    if samples:
        facts.sample = samples[-1]
        match = re.search(r"step_(\d+)", samples[-1].stem)
        facts.sample_step = int(match.group(1)) if match else None
    return facts


def collect(sources: Sequence[Path]) -> Release:
    """Every model the sources hold, each with a distinct name in the repository."""
    models: list[ModelFile] = []
    runs: list[RunFacts] = []
    for source in sources:
        if source.is_dir() and _is_run(source):
            run = read_run(source)
            runs.append(run)
            files = sorted((source / "generators").glob("*.safetensors"))
            if not files:
                raise ReleaseError(f"{source} is a training run without generators/*.safetensors yet")
            for path in files:
                card = read_model_card(path)
                models.append(ModelFile(path, f"{default_name(path, card)}_{path.stem}.safetensors", card))
        elif source.is_dir():
            files = sorted(
                p for p in source.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file() and not is_companion(p)
            )
            if not files:
                raise ReleaseError(f"{source} holds no .onnx or .safetensors models (and is not a training run folder)")
            models += [ModelFile(p, p.name, read_model_card(p)) for p in files]
        elif source.is_file():
            if source.suffix not in MODEL_SUFFIXES:
                raise ReleaseError(
                    f"{source}: expected an .onnx or .safetensors model, a models folder or a run folder"
                )
            models.append(ModelFile(source, source.name, read_model_card(source)))
        else:
            raise ReleaseError(f"no such file or folder: {source}")
    if not models:
        raise ReleaseError("nothing to upload: name a training run, a models folder or model files")
    seen: dict[str, Path] = {}
    for model in models:
        if model.repo_path in seen:
            raise ReleaseError(
                f"{model.path} and {seen[model.repo_path]} would both be {model.repo_path} in the repository: "
                "rename one (or push them to different repositories)"
            )
        seen[model.repo_path] = model.path
    companions = [
        model.path.with_name(name)
        for model in models
        if model.kind == "onnx" and model.repo_path == model.path.name
        for name in (model.card.stats_model, model.card.tiles_model)
        if name is not None and model.path.with_name(name).is_file()
    ]
    return Release(models, runs, companions)
