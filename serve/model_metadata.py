"""The description that travels with a trained generator, from training to serving.

One dataclass, :class:`GeneratorCard`, is the single source of truth:

* training writes it as JSON into the safetensors header (key ``"cyclegan"``),
* export copies it into the ONNX ``metadata_props`` (same key, plus the export fields),
* the torch-free serving side reads it back from the ONNX file and nothing else.

This module imports neither torch nor onnx so that every stage can use it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

METADATA_KEY = "cyclegan"
FORMAT = "cyclegan-toolkit/generator@1"


class MetadataError(ValueError):
    """The model file carries no, or unreadable, cyclegan metadata."""


@dataclass
class GeneratorCard:
    """Everything needed to rebuild, export or serve one generator direction."""

    # Architecture (the `model` section of the training config, generator part).
    generator: str  # resnet_9blocks | resnet_6blocks | unet_128 | unet_256
    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    norm: str = "instance"
    use_dropout: bool = False
    # Which way it maps and what the domains are called.
    direction: str = "A2B"  # A2B (G_A in the paper's code) or B2A (G_B)
    source_domain: str = "A"
    target_domain: str = "B"
    # Pixel convention: input = (rgb/255 - mean) / std, output in the same space.
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    size_multiple: int = 4  # height and width must be multiples of this
    train_size: int = 256  # crop size seen in training
    # Provenance.
    step: int = 0
    epoch: int = 0
    ema: bool = False
    run_name: str = ""
    project_version: str = ""
    # Filled by export only.
    max_side: int | None = None  # recommended maximum image side for serving
    precision: str | None = None  # fp32 | fp16 | int8
    opset: int | None = None
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """Human name of the style, e.g. ``photo -> cartoon``."""
        return f"{self.source_domain} -> {self.target_domain}"

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GeneratorCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetadataError(f"model metadata is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise MetadataError("model metadata must be a JSON object")
        fmt = data.get("format", "")
        if not str(fmt).startswith("cyclegan-toolkit/generator@"):
            raise MetadataError(f"unknown model metadata format {fmt!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = {k: v for k, v in data.items() if k not in known}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "generator" not in kwargs:
            raise MetadataError("model metadata lacks the 'generator' field")
        for key in ("mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(float(x) for x in kwargs[key])
        card = cls(**kwargs)
        card.extra = {**card.extra, **unknown}
        return card

    def to_props(self) -> dict[str, str]:
        """Key/value pairs for ONNX ``metadata_props`` or a safetensors header."""
        return {METADATA_KEY: self.to_json()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str = "model") -> GeneratorCard:
        if METADATA_KEY not in props:
            raise MetadataError(
                f"{where} has no '{METADATA_KEY}' metadata: it was not written by this toolkit's "
                "training/export (re-export it with `cyclegan export`)"
            )
        return cls.from_json(props[METADATA_KEY])
