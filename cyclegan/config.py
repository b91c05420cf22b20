"""Typed run configuration: dataclasses loaded from YAML, with ``key=value`` overrides.

Every field is type-checked on load (:mod:`cyclegan.contract.typed`; numbers must be finite); unknown keys and
out-of-range values raise :class:`ConfigError` naming the dotted key, so a typo in a YAML file or on the command
line fails before any work starts. The architecture vocabulary (generator kinds, norms) is the card's
(:mod:`cyclegan.contract.card`); the training-only choices are the Literals below, and the modules that act on
them take their names from here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cyclegan.contract import typed
from cyclegan.contract.card import (
    MAX_SKIP_BLUR,
    MAX_SKIP_LEVELS,
    GeneratorKind,
    NormKind,
    SkipChange,
    SkipFilter,
    UpsampleKind,
)
from cyclegan.contract.errors import ToolkitError
from cyclegan.contract.files import write_text_atomic


class ConfigError(ToolkitError, ValueError):
    """A configuration value or key is invalid; the message names the dotted key."""


DiscriminatorKind = Literal["basic", "n_layers", "pixel"]
InitKind = Literal["normal", "xavier", "kaiming", "orthogonal"]
GanMode = Literal["lsgan", "vanilla", "hinge"]
SchedulerKind = Literal["linear", "cosine", "step", "constant"]
Preprocess = Literal[
    "resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "scale_shorter_side_and_crop", "none"
]
CROPPING_PREPROCESS = ("resize_and_crop", "crop", "scale_width_and_crop", "scale_shorter_side_and_crop")  # square crops
MixedPrecision = Literal["no", "bf16", "fp16", "auto"]
# train.eval_metric: the score that picks generators/best_*.safetensors (lower is better; see training/evaluate.py)
EvalMetric = Literal["auto", "cycle_mae", "identity_mae", "kid"]
# DiffAugment transforms (cyclegan.augment), for train.diffaugment.
DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")
# Accelerate's tracker names (accelerate.utils.LoggerType), for train.log_with.
TRACKERS = ("tensorboard", "wandb", "trackio", "comet_ml", "aim", "mlflow", "clearml", "dvclive", "swanlab")


@dataclass
class ModelConfig:
    """Network architecture. These values are also written next to the weights."""

    generator: GeneratorKind = "resnet_9blocks"
    discriminator: DiscriminatorKind = "basic"
    n_layers_d: int = 3
    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    ndf: int = 64
    norm: NormKind = "instance"
    norm_d: NormKind | None = None  # discriminator norm; None = same as `norm`
    # What D_A, the judge of the style domain B, sees: the pictures, or their luminance only. A luminance judge
    # teaches the style's strokes, flat areas and outlines but not its colours, so a photo keeps its own palette
    # (with the cycle) instead of taking the colours of the cartoon's scenes.
    d_a_input: Literal["rgb", "luminance"] = "rgb"
    use_dropout: bool = False
    upsample: UpsampleKind = "deconv"  # deconv: the reference's layers; resize: nearest 2x + 3x3 conv, no checkerboard
    global_skip: bool = False  # the generator adds a change to its input picture (cyclegan/models/skip.py)
    skip_blur: float = 0.0  # with global_skip: add the change to a Gaussian blur (sigma, px) of the input instead
    skip_filter: SkipFilter = "gaussian"  # bilateral(_gaussian): edge-preserving smoothing (then the blur), same sigma
    # with global_skip: what the network may change on top of the skip: every channel (rgb), or the lightness only
    # (luminance: one value per pixel added to every channel): the skip's hues stay, the palette cannot drift
    skip_change: SkipChange = "rgb"
    # with global_skip: the skip's lightness in this many flat tones (0 = off): cel shading, with crisp tone
    # boundaries for the network to outline (a soft staircase, so video does not flicker at the boundaries)
    skip_levels: int = 0
    init_type: InitKind = "normal"
    init_gain: float = 0.02

    def validate(self) -> None:
        _positive(self, "n_layers_d", "input_nc", "output_nc", "ngf", "ndf")
        _at_most(self, ngf=1024, ndf=1024, n_layers_d=10)
        if self.init_gain <= 0:
            raise ConfigError(f"model.init_gain must be > 0, got {self.init_gain}")
        if self.n_layers_d != 3 and self.discriminator != "n_layers":  # the reference ignores it silently
            raise ConfigError(
                f"model.n_layers_d={self.n_layers_d} is used only with model.discriminator=n_layers "
                f"(discriminator={self.discriminator} has its own depth)"
            )
        if not math.isfinite(self.skip_blur) or not 0 <= self.skip_blur <= MAX_SKIP_BLUR:
            raise ConfigError(f"model.skip_blur must be a number from 0 to {MAX_SKIP_BLUR:g}, got {self.skip_blur}")
        if self.skip_blur and not self.global_skip:
            raise ConfigError("model.skip_blur needs model.global_skip=true (it blurs what the skip adds)")
        if self.skip_filter != "gaussian" and not self.skip_blur:
            raise ConfigError(
                f"model.skip_filter={self.skip_filter} needs model.skip_blur > 0 (the filter's spatial sigma, px)"
            )
        if self.skip_change != "rgb" and not self.global_skip:
            raise ConfigError(
                f"model.skip_change={self.skip_change} needs model.global_skip=true (it is a change to the skip)"
            )
        if self.skip_levels == 1 or not 0 <= self.skip_levels <= MAX_SKIP_LEVELS:
            raise ConfigError(
                f"model.skip_levels must be 0 (off) or a number of tones from 2 to {MAX_SKIP_LEVELS}, "
                f"got {self.skip_levels}"
            )
        if self.skip_levels and not self.global_skip:
            raise ConfigError("model.skip_levels needs model.global_skip=true (it tones what the skip adds)")
        if self.global_skip and self.input_nc != self.output_nc:
            raise ConfigError(
                f"model.global_skip needs model.input_nc == model.output_nc, got {self.input_nc} and {self.output_nc}"
            )
        if self.d_a_input == "luminance" and self.output_nc != 3:
            raise ConfigError(f"model.d_a_input=luminance needs RGB pictures (model.output_nc=3), got {self.output_nc}")


@dataclass
class DataConfig:
    """Where the unpaired images are and how they are augmented."""

    root: str = "datasets/demo"
    domain_a: str = "A"  # human-readable names, written into model metadata
    domain_b: str = "B"
    preprocess: Preprocess = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    serial_batches: bool = False
    max_dataset_size: int | None = None
    num_workers: int = -1  # -1: chosen from the CPU count
    test_images: int = 4  # fixed images from testA/testB used for sample grids

    def validate(self) -> None:
        _positive(self, "load_size", "crop_size")
        _at_most(self, load_size=8192, crop_size=8192)
        if not self.root.strip():
            raise ConfigError("data.root must name the dataset folder, got an empty string")
        if self.preprocess in CROPPING_PREPROCESS and self.preprocess != "crop" and self.crop_size > self.load_size:
            raise ConfigError(
                f"data.crop_size ({self.crop_size}) must be <= data.load_size ({self.load_size}) "
                f"for preprocess={self.preprocess!r}"
            )
        if self.max_dataset_size is not None and self.max_dataset_size <= 0:
            raise ConfigError(f"data.max_dataset_size must be > 0 or null, got {self.max_dataset_size}")
        if self.num_workers < -1:
            raise ConfigError(f"data.num_workers must be >= -1, got {self.num_workers}")
        if self.test_images < 0:
            raise ConfigError(f"data.test_images must be >= 0, got {self.test_images}")


@dataclass
class LossConfig:
    gan_mode: GanMode = "lsgan"
    lambda_a: float = 10.0  # cycle A -> B -> A
    lambda_b: float = 10.0  # cycle B -> A -> B
    lambda_identity: float = 0.5  # relative to lambda_a / lambda_b, as in the paper's code
    pool_size: int = 50
    # Total variation of G_A's change over its skip (needs model.global_skip): a price on every step between
    # neighbouring pixels of what the network adds, so it draws few strong edges (outlines) on flat areas instead
    # of a dense texture (the streaks short runs paint over fur and wood). 0 = off.
    lambda_change_tv: float = 0.0

    def validate(self) -> None:
        for name in ("lambda_a", "lambda_b", "lambda_identity", "lambda_change_tv"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        if self.pool_size < 0:
            raise ConfigError(f"loss.pool_size must be >= 0, got {self.pool_size}")
        _at_most(self, pool_size=1000)  # the pool holds that many images per domain in memory


@dataclass
class OptimConfig:
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    scheduler: SchedulerKind = "linear"
    n_epochs: int = 100  # epochs at the initial LR (linear) / total length basis
    n_epochs_decay: int = 100  # epochs of linear decay to zero after n_epochs
    step_size: int = 50  # step scheduler: decay every step_size epochs
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    interval: Literal["epoch", "step"] = "epoch"

    def validate(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ConfigError(f"optim.{name} must be in [0, 1), got {value}")
        if self.n_epochs < 0 or self.n_epochs_decay < 0 or self.n_epochs + self.n_epochs_decay <= 0:
            raise ConfigError(
                "optim.n_epochs and optim.n_epochs_decay must be >= 0 and not both 0, "
                f"got {self.n_epochs} and {self.n_epochs_decay}"
            )
        _positive(self, "step_size")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"optim.gamma must be in (0, 1], got {self.gamma}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"optim.warmup_epochs must be >= 0, got {self.warmup_epochs}")

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay


@dataclass
class TrainConfig:
    output_dir: str = "runs/default"
    batch_size: int = 1
    mixed_precision: MixedPrecision = "auto"  # auto: bf16 where the hardware supports it, else no
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimizer steps (None: run all epochs)
    save_every: int = 1000  # steps between checkpoints (also saved at the end)
    keep_last: int = 3
    log_every: int = 50
    sample_every: int = 500
    ema_decay: float | None = None  # e.g. 0.999 keeps an EMA of the generators
    compile: bool = False  # torch.compile on CUDA
    channels_last: bool = True  # applied on CUDA only
    deterministic: bool = False
    log_with: str = "tensorboard"  # Accelerate trackers, comma-separated (tensorboard, wandb, mlflow, ...) or none
    # Several processes: how long one waits in a collective (all-reduce, barrier) for the others before the run
    # stops with an error naming the rendezvous; a node that died or hangs costs at most this long.
    ddp_timeout_s: int = 600
    # Small-budget recipe (benchmarks/quality.py measures each): generator-only steps that teach both generators
    # the identity mapping before the GAN starts, so they begin from the photo instead of noise; and
    # differentiable augmentation of what the discriminators see (none, or e.g. color,translation,cutout).
    identity_warmup_steps: int = 0
    diffaugment: str = "none"

    # Evaluation on the test split (testA/testB) every eval_every steps (0: off): eval/* scores in metrics.jsonl
    # and the trackers, and the best generators by eval_metric kept as generators/best_*.safetensors.
    eval_every: int = 0
    eval_metric: EvalMetric = "auto"  # auto: kid when the Inception weights are on disk, else cycle_mae
    eval_images: int = 50  # test images per domain (the first ones by name)

    @property
    def diffaugment_policy(self) -> tuple[str, ...]:
        """``diffaugment`` as a tuple of transform names (empty for ``none``)."""
        names = tuple(name.strip() for name in self.diffaugment.split(",") if name.strip())
        return () if names == ("none",) else names

    @property
    def trackers(self) -> list[str]:
        """``log_with`` as Accelerate's ``log_with`` list (empty for ``none``)."""
        names = [name.strip() for name in self.log_with.split(",") if name.strip()]
        return [] if names == ["none"] else names

    def validate(self) -> None:
        _positive(self, "batch_size", "save_every", "keep_last", "log_every", "sample_every", "ddp_timeout_s")
        if not self.output_dir.strip():
            raise ConfigError(
                "train.output_dir must name the run folder, got an empty string (it would be the current folder)"
            )
        unknown = [name for name in self.trackers if name not in TRACKERS]
        if unknown or not self.log_with.strip():
            raise ConfigError(f"train.log_with: unknown tracker(s) {unknown}: use none or any of {', '.join(TRACKERS)}")
        unknown = [name for name in self.diffaugment_policy if name not in DIFFAUGMENT_POLICIES]
        if unknown or not self.diffaugment.strip():
            raise ConfigError(
                f"train.diffaugment: unknown transform(s) {unknown}: "
                f"use none or any of {', '.join(DIFFAUGMENT_POLICIES)}"
            )
        if self.identity_warmup_steps < 0:
            raise ConfigError(f"train.identity_warmup_steps must be >= 0, got {self.identity_warmup_steps}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise ConfigError(f"train.max_steps must be > 0 or null, got {self.max_steps}")
        if self.eval_every < 0:
            raise ConfigError(f"train.eval_every must be >= 0 (0: off), got {self.eval_every}")
        _positive(self, "eval_images")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay must be in (0, 1) or null, got {self.ema_decay}")


@dataclass
class Config:
    name: str = "cyclegan"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> Config:
        for section in (self.model, self.data, self.loss, self.optim, self.train):
            section.validate()
        if self.loss.lambda_change_tv and not self.model.global_skip:
            raise ConfigError("loss.lambda_change_tv needs model.global_skip=true (it prices the change to the skip)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write the resolved config as YAML, atomically."""
        write_text_atomic(path, self.to_yaml())


def _positive(section: Any, *names: str) -> None:
    prefix = _SECTION_PREFIX.get(type(section), "")
    for name in names:
        value = getattr(section, name)
        if value <= 0:
            raise ConfigError(f"{prefix}{name} must be > 0, got {value}")


def _at_most(section: Any, **limits: int) -> None:
    """Upper bounds far beyond any real setting: a typo with extra zeros fails here, not as an out-of-memory."""
    prefix = _SECTION_PREFIX.get(type(section), "")
    for name, limit in limits.items():
        value = getattr(section, name)
        if value > limit:
            raise ConfigError(f"{prefix}{name} must be at most {limit}, got {value}")


_SECTION_PREFIX = {
    ModelConfig: "model.",
    DataConfig: "data.",
    LossConfig: "loss.",
    OptimConfig: "optim.",
    TrainConfig: "train.",
}


def config_from_dict(data: dict[str, Any]) -> Config:
    return typed.build(Config, data, ConfigError).validate()


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to a raw config dict; values are parsed as YAML scalars."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        dotted, raw = item.split("=", 1)
        parts = dotted.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: cannot parse value: {exc}") from None
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
        node[parts[-1]] = value
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML preset (or the defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}): is it a YAML file?"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded or {}
    data = apply_overrides(data, list(overrides))
    return config_from_dict(data)
