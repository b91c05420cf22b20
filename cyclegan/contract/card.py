"""The generator card: everything needed to rebuild, export or serve one generator direction.

One dataclass, :class:`GeneratorCard`, travels with the weights from training to serving:

* training writes it as JSON into the safetensors header (key :data:`METADATA_KEY`),
* export copies it into the ONNX ``metadata_props`` (same key) and fills the export fields,
* the torch-free serving side reads it back from the ONNX file and nothing else.

Reading a card is the edge where files from elsewhere enter, so :meth:`GeneratorCard.from_json` checks every
field's type and range and refuses what it cannot trust (:class:`CardError`). Cards written by older versions
(without ``min_side``/``upsample``) still load: the missing fields are derived from the generator kind.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from cyclegan.contract import sizes, typed
from cyclegan.contract.errors import ToolkitError

METADATA_KEY = "cyclegan"
FORMAT = "cyclegan-toolkit/generator@1"
# Serving pads every image up to these rules: a card asking for more would turn any photo into a huge tensor.
MAX_SIZE_RULE = 2048
MAX_SKIP_LEVELS = 64  # tones of the skip's lightness (cyclegan.models.skip); more is a smooth picture again
MAX_SKIP_BLUR = 16.0  # sigma in pixels of the skip's blur (cyclegan.models.skip); its kernel spans 3 sigma each side
MAX_OUTLINES = 4.0  # sigma in pixels of the outline filter (cyclegan.models.skip); outer Gaussian: 3 x 1.6 sigma

# The architecture vocabulary: the training config, the model factory and the card all take it from here.
GeneratorKind = Literal["resnet_9blocks", "resnet_6blocks", "unet_128", "unet_256"]
NormKind = Literal["instance", "batch", "none"]
UpsampleKind = Literal["deconv", "resize"]  # cyclegan.models.upsample
# What the image skip smooths with (cyclegan.models.skip.SkipSource).
SkipFilter = Literal["gaussian", "bilateral", "bilateral_gaussian"]
# What the network may change on top of the skip: every channel, or the lightness only (cyclegan.models.skip).
SkipChange = Literal["rgb", "luminance"]
Direction = Literal["A2B", "B2A"]
Precision = Literal["fp32", "fp16", "int8"]
GENERATOR_KINDS: tuple[str, ...] = get_args(GeneratorKind)
NORM_KINDS: tuple[str, ...] = get_args(NormKind)
UPSAMPLE_KINDS: tuple[str, ...] = get_args(UpsampleKind)
SKIP_FILTERS: tuple[str, ...] = get_args(SkipFilter)
SKIP_CHANGES: tuple[str, ...] = get_args(SkipChange)
DIRECTIONS: tuple[str, ...] = get_args(Direction)
PRECISIONS: tuple[str, ...] = get_args(Precision)
assert all(sizes.size_multiple(kind) and sizes.min_side(kind) for kind in GENERATOR_KINDS)


class CardError(ToolkitError, ValueError):
    """A model file carries no, or an unusable, generator card."""


@dataclass
class GeneratorCard:
    """Everything needed to rebuild, export or serve one generator direction."""

    # Architecture (the generator part of the training config's `model` section).
    generator: GeneratorKind
    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    norm: NormKind = "instance"
    use_dropout: bool = False
    upsample: UpsampleKind = "deconv"
    global_skip: bool = False  # output = clamp(input + network(input)) (cyclegan.models.skip)
    skip_blur: float = 0.0  # > 0: the skip adds a Gaussian blur of the input with this sigma (px) instead
    skip_filter: SkipFilter = "gaussian"  # bilateral(_gaussian): edge-preserving smoothing (then the blur), same sigma
    skip_change: SkipChange = "rgb"  # luminance: one grey change per pixel, added to every channel (hues kept)
    skip_levels: int = 0  # > 0: the skip's lightness in this many flat tones (a soft staircase)
    # > 0: dark outlines drawn on the output where the skip's smoothing changes colour (a soft difference of
    # Gaussians, this sigma in px): a filter added at export (`cyclegan export --outlines`), not learnt
    outlines: float = 0.0
    # Which way it maps and what the domains are called.
    direction: Direction = "A2B"  # A2B (G_A in the paper's code) or B2A (G_B)
    source_domain: str = "A"
    target_domain: str = "B"
    # Pixel convention: input = (rgb/255 - mean) / std, output in the same space (cyclegan.contract.pixels).
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    # Size rules (cyclegan.contract.sizes): sides must be multiples of size_multiple and at least min_side.
    size_multiple: int | None = None  # None: derived from the generator kind
    min_side: int | None = None  # None: derived (cards older than this field lack it)
    train_size: int = 256  # crop size seen in training
    # Provenance.
    step: int = 0
    epoch: int = 0
    ema: bool = False
    run_name: str = ""
    project_version: str = ""
    # Filled by export only.
    max_side: int | None = None  # recommended maximum image side for serving
    precision: Precision | None = None
    opset: int | None = None
    # Companion graphs for seam-free tiles (cyclegan.contract.tiles), file names in the model's folder; None
    # where the export wrote none (older exports, U-Nets, models without InstanceNorm).
    stats_model: str | None = None
    tiles_model: str | None = None
    stats_size: int | None = None  # length of the statistics vector the two exchange
    # Filled by export for reduced precisions (fp16/int8): measured against the same export's fp32 model on
    # held-out images of the source domain, and its onnxruntime CPU speed; older cards lack them (None).
    psnr_vs_fp32_db: float | None = None
    speed_vs_fp32: float | None = None  # fp32 ms / this model's ms, at bench_side px on bench_cpu
    bench_side: int | None = None
    bench_cpu: str | None = None
    quant_recipe: str | None = None  # int8: the recipe chosen (export.quantize.INT8_RECIPES)
    float_nodes: tuple[str, ...] = ()  # int8: convolutions kept in float by the recipe
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.size_multiple is None:
            self.size_multiple = sizes.size_multiple(self.generator)
        if self.min_side is None:
            self.min_side = sizes.min_side(self.generator)
        self.validate()

    @property
    def title(self) -> str:
        """Human name of the style, e.g. ``photo -> cartoon``."""
        return f"{self.source_domain} -> {self.target_domain}"

    @property
    def architecture(self) -> str:
        """The generator in words, e.g. ``ResNet 9 blocks, 64 filters, instance norm``."""
        kind = self.generator
        if kind.startswith("resnet_") and kind.endswith("blocks"):
            kind = f"ResNet {kind[len('resnet_') : -len('blocks')]} blocks"
        elif kind.startswith("unet_"):
            kind = f"U-Net {kind[len('unet_') :]}"
        return f"{kind}, {self.ngf} filters, {self.norm} norm" + (", dropout" if self.use_dropout else "")

    def validate(self) -> GeneratorCard:
        """Raise :class:`CardError` for values no generator of this toolkit can have."""
        for name, allowed in (("generator", GENERATOR_KINDS), ("norm", NORM_KINDS), ("upsample", UPSAMPLE_KINDS),
                              ("skip_filter", SKIP_FILTERS), ("skip_change", SKIP_CHANGES),
                              ("direction", DIRECTIONS), ("precision", (*PRECISIONS, None))):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise CardError(
                    f"card field {name} must be one of {', '.join(map(str, allowed))}, got {getattr(self, name)!r}"
                )
        for name in ("input_nc", "output_nc", "ngf", "size_multiple", "min_side", "train_size"):
            if getattr(self, name) < 1:
                raise CardError(f"card field {name} must be >= 1, got {getattr(self, name)}")
        for name in ("size_multiple", "min_side"):
            if getattr(self, name) > MAX_SIZE_RULE:
                raise CardError(
                    f"card field {name} must be at most {MAX_SIZE_RULE} (every image is padded up to it), "
                    f"got {getattr(self, name)}"
                )
        if not isinstance(self.skip_blur, (int, float)) or not 0 <= self.skip_blur <= MAX_SKIP_BLUR:
            raise CardError(f"card field skip_blur must be from 0 to {MAX_SKIP_BLUR:g}, got {self.skip_blur!r}")
        if self.skip_blur and not self.global_skip:
            raise CardError("card field skip_blur needs global_skip")
        if self.skip_filter != "gaussian" and not self.skip_blur:
            raise CardError(f"card field skip_filter={self.skip_filter} needs skip_blur (its spatial sigma)")
        if self.skip_change != "rgb" and not self.global_skip:
            raise CardError(f"card field skip_change={self.skip_change} needs global_skip")
        if (
            not isinstance(self.skip_levels, int)
            or self.skip_levels == 1
            or not 0 <= self.skip_levels <= MAX_SKIP_LEVELS
        ):
            raise CardError(
                f"card field skip_levels must be 0 or from 2 to {MAX_SKIP_LEVELS}, got {self.skip_levels!r}"
            )
        if self.skip_levels and not self.global_skip:
            raise CardError("card field skip_levels needs global_skip")
        if (
            isinstance(self.outlines, bool)
            or not isinstance(self.outlines, (int, float))
            or not 0 <= self.outlines <= MAX_OUTLINES
        ):
            raise CardError(f"card field outlines must be from 0 to {MAX_OUTLINES:g}, got {self.outlines!r}")
        if self.outlines and not self.global_skip:
            raise CardError("card field outlines needs global_skip")
        if self.global_skip and self.input_nc != self.output_nc:
            raise CardError(
                f"card: global_skip needs as many output as input channels, got {self.input_nc} -> {self.output_nc}"
            )
        if self.input_nc not in (1, 3) or self.output_nc not in (1, 3):
            raise CardError(f"card: only 1 or 3 channels are supported, got {self.input_nc} -> {self.output_nc}")
        if any(not math.isfinite(s) or s <= 0 for s in self.std):
            raise CardError(f"card field std must be finite and > 0, got {list(self.std)}")
        if self.max_side is not None and self.max_side < 1:
            raise CardError(f"card field max_side must be >= 1 or null, got {self.max_side}")
        companions = (self.stats_model, self.tiles_model, self.stats_size)
        if any(c is not None for c in companions) and any(c is None for c in companions):
            raise CardError("card fields stats_model, tiles_model and stats_size must be set together or not at all")
        for name in ("stats_model", "tiles_model"):
            value = getattr(self, name)
            if value is not None and (
                not value.endswith(".onnx") or "/" in value or "\\" in value or value.startswith(".")
            ):
                raise CardError(f"card field {name} must be a plain .onnx file name, got {value!r}")
        if self.stats_size is not None and self.stats_size < 1:
            raise CardError(f"card field stats_size must be >= 1 or null, got {self.stats_size}")
        self._validate_measured()
        return self

    def _validate_measured(self) -> None:
        if self.psnr_vs_fp32_db is not None and not (math.isfinite(self.psnr_vs_fp32_db) and self.psnr_vs_fp32_db >= 0):
            raise CardError(
                f"card field psnr_vs_fp32_db must be a finite number >= 0 or null, got {self.psnr_vs_fp32_db}"
            )
        if self.speed_vs_fp32 is not None and not (math.isfinite(self.speed_vs_fp32) and self.speed_vs_fp32 > 0):
            raise CardError(f"card field speed_vs_fp32 must be a finite number > 0 or null, got {self.speed_vs_fp32}")
        if self.bench_side is not None and self.bench_side < 1:
            raise CardError(f"card field bench_side must be >= 1 or null, got {self.bench_side}")
        for name in ("bench_cpu", "quant_recipe"):
            value = getattr(self, name)
            if value is not None and (len(value) > 200 or not value.isprintable()):
                raise CardError(f"card field {name} must be printable text of at most 200 characters")
        if len(self.float_nodes) > 10_000 or any(len(n) > 200 for n in self.float_nodes):
            raise CardError("card field float_nodes must list at most 10000 node names of at most 200 characters")

    @property
    def measured(self) -> str:
        """The export's measurements in words (empty for fp32 or an older card), e.g.
        ``int8: PSNR 34.2 dB vs fp32, 2.31x fp32 speed at 512 px on AMD EPYC (recipe float-ends)``."""
        if self.psnr_vs_fp32_db is None and self.speed_vs_fp32 is None:
            return ""
        parts = [f"{self.precision or 'model'}:"]
        if self.psnr_vs_fp32_db is not None:
            parts.append(f"PSNR {self.psnr_vs_fp32_db:.1f} dB vs fp32")
        if self.speed_vs_fp32 is not None:
            where = f" at {self.bench_side} px" if self.bench_side else ""
            where += f" on {self.bench_cpu}" if self.bench_cpu else ""
            parts.append(("," if len(parts) > 1 else "") + f" {self.speed_vs_fp32:.2f}x fp32 speed{where}")
        text = " ".join(parts).replace(" ,", ",")
        return text + (f" (recipe {self.quant_recipe})" if self.quant_recipe else "")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "model") -> GeneratorCard:
        """Parse and check a card; raises :class:`CardError` naming ``where``."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CardError(f"{where}: the model card is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CardError(f"{where}: the model card must be a JSON object")
        if not str(data.get("format", "")).startswith("cyclegan-toolkit/generator@"):
            raise CardError(f"{where}: unknown model card format {data.get('format')!r}")
        if "generator" not in data:
            raise CardError(f"{where}: the model card lacks the 'generator' field")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = {k: v for k, v in data.items() if k not in known}
        fields = {k: v for k, v in data.items() if k in known}
        if not isinstance(fields.get("extra") or {}, dict):
            raise CardError(f"{where}: the model card's 'extra' must be an object")
        fields["extra"] = {**(fields.get("extra") or {}), **unknown}
        try:
            return typed.build(cls, fields, _CardFieldError, prefix="")
        except (_CardFieldError, CardError) as exc:
            raise CardError(f"{where}: unusable model card: {exc}") from None

    def to_props(self) -> dict[str, str]:
        """Key/value pairs for ONNX ``metadata_props`` or a safetensors header."""
        return {METADATA_KEY: self.to_json()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str = "model") -> GeneratorCard:
        if METADATA_KEY not in props:
            raise CardError(
                f"{where} has no '{METADATA_KEY}' metadata: it was not written by this toolkit's "
                "training/export (re-export it with `cyclegan export`)"
            )
        return cls.from_json(props[METADATA_KEY], where)


def style_titles(named_cards: Sequence[tuple[str, GeneratorCard]], *, arrow: str = "->") -> list[str]:
    """``source -> target`` for each (model name, card); where several models share one, their names are added."""
    titles = [f"{card.source_domain} {arrow} {card.target_domain}" for _, card in named_cards]
    return [f"{title} ({name})" if titles.count(title) > 1 else title for (name, _), title in zip(named_cards, titles)]


class _CardFieldError(ValueError):
    """A field of a card read from a file has the wrong type (wrapped into CardError with the file name)."""
